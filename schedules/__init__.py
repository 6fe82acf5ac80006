"""Scheduled jobs (due sweep, payout runs, janitor) run by APScheduler.

Empty for now: the scheduler arrives with the schedules issue. The package exists so the
project's shape matches its design and the Dockerfile's scheduler service has a home.
"""
