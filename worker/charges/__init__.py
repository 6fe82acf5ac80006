"""Recurring charges: the pure rules (states, what a decline means, card caps) and the
pipeline that drives one billing period to a final state through a gateway port.
"""
