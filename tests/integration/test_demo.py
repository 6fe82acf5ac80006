"""``billing demo`` end to end, as ``make demo`` runs it: the whole story happens, it exits 0,
prints no secret, and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.fixtures.logs import LogCapture, find_leaks
from worker.demo import PAYOUT_PAN

pytestmark = pytest.mark.slow

#: The demo's own budget is about two minutes; leave room for a slow machine.
TIMEOUT = 240


def _marked_processes(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker``: everything the demo started
    inherits it (zombies have no readable environment, so they count as gone).
    """
    needle = marker.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ:
            found.append(int(entry.name))
    return found


def _leftovers(marker: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (pids := _marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_demo_tells_the_whole_story_and_leaves_nothing_running(
    log_dir: Path, log_capture: LogCapture
) -> None:
    marker = f"demo-test-{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env["DEMO_TEST_MARKER"] = marker
    logs = log_dir / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    billing = Path(sys.executable).with_name("billing")
    started = time.monotonic()
    demo = subprocess.Popen(
        [str(billing), "demo", "--log-dir", str(logs)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = demo.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        demo.send_signal(signal.SIGTERM)  # the demo stops what it started, then exits
        try:
            stdout, stderr = demo.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
            stdout, stderr = demo.communicate()
    finally:
        left = _leftovers(marker)
        for pid in left:  # fail below, but leave nothing running for the rest of the session
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    elapsed = time.monotonic() - started
    out = stdout.decode("utf-8", errors="replace")
    err = stderr.decode("utf-8", errors="replace")
    (logs / "demo.out").write_text(out + err, encoding="utf-8")  # for the session's log scan

    assert demo.returncode == 0, f"exit {demo.returncode}\n{out}\n{err}"
    assert not left, f"processes left behind: {left}"
    assert elapsed < 120, f"the demo took {elapsed:.0f}s"

    # 1. it started everything, 2. imported the sample file with the importer
    for started_line in (
        "Redis ",
        "sandbox gateway on ",
        "second gateway's sandbox (Bizon) on ",
        "worker ready",
        "scheduler ready",
        "fallback: BILLING_FALLBACK_GATEWAY=bizon",
    ):
        assert started_line in out
    assert "created 8, unchanged 0, invalid 0" in out
    # and two subscriptions on Bizon, each rebilling a checkout order the demo paid there
    checkouts = re.findall(r"sign-up fee on\s+Bizon with \S+: order (\d+)", out)
    assert len(checkouts) == 2, out
    assert re.search(rf"--gateway bizon\s+--parent-order\s+{checkouts[0]}", out)
    assert re.search(rf"--stored-id 5170\s+--parent-order\s+{checkouts[1]}", out)
    # 3. charged them, with dunning in seconds and a top-up
    for sub in ("sub-anna", "sub-bora", "sub-cem", "sub-dina"):
        assert re.search(rf"{sub}\s+paid on attempt 1 \(txpg\), order \d+", out)
    assert re.search(
        r"sub-elif\s+declined on attempt 1 \(txpg\): 59 Insufficient funds \(soft\)", out
    )
    assert "card 5159 topped up by 20.00 AZN" in out
    assert re.search(r"sub-elif\s+paid on attempt [23] \(txpg\), order \d+", out)
    assert re.search(r"sub-farid\s+dead-lettered \(dunning_exhausted\) after attempt 3", out)
    assert re.search(r"sub-gunel\s+declined on attempt 1 \(txpg\): 41 Stolen card \(hard\)", out)
    assert re.search(r"sub-huseyn\s+declined on attempt 1 \(txpg\): 51 Expired card \(hard\)", out)
    # the second gateway in the same sweep, and a failover from TXPG to it
    assert re.search(r"sub-ilkin\s+paid on attempt 1 \(bizon\), order \d+", out)
    assert re.search(r"sub-jala\s+declined on attempt 1 \(txpg\): 59 Insufficient funds", out)
    assert re.search(r"sub-jala\s+paid on attempt 2 \(bizon\), order \d+", out)
    # 4. the outcomes table, with each attempt's gateway
    # (a narrow terminal wraps the reason under "dead:")
    farid = r"sub-farid\s+\S+\s+dead:\s+3\s+txpg > txpg > txpg\s.*\n\s+dunning_exhaus"
    assert re.search(farid, out)
    assert re.search(r"sub-gunel\s+\S+\s+dead:\s+1\s+txpg\s.*\n\s+hard_decline", out)
    assert re.search(r"sub-jala\s+\S+\s+paid\s+2\s+txpg > bizon", out)
    # 5. dead letters, a replay, the event stream
    assert "$ billing dlq list" in out and "3 shown, newest first" in out
    assert re.search(
        r"reopened sub-farid period \S+: due now; subscription past_due -> active", out
    )
    assert re.search(r"sub-farid\s+paid on attempt 4 \(txpg\), order \d+", out)
    assert "$ billing events tail -n 15 --no-follow" in out and "dlq.replayed" in out
    # 6. a payout run through the product: import, a run whose limit holds one back, the
    # worker sends the rest (one declined), the scheduler finishes it, the report
    assert "$ billing payouts import " in out and "created 4, unchanged 0, invalid 0" in out
    run = re.search(r"\$ billing payouts run --run-id (sellers-\S+) --max-total 250\.00 AZN", out)
    assert run, out
    run_id = run.group(1)
    assert f"started run {run_id}: took 3 payouts (245.50 AZN)" in out
    assert "limit reached: max_total 250.00 AZN; 1 payout held, pending, for the next run" in out
    for paid in ("po-aylin", "po-ceyhun"):
        assert re.search(rf"{paid}\s+paid out on attempt 1 \(txpg\), order \d+", out)
    assert re.search(r"po-babek\s+payout failed \(txpg\): 64 Credit amount limit \(soft\)", out)
    assert f"{run_id} run finished, limit_reached: 2 paid, 1 failed" in out
    assert not re.search(r"po-deniz\s+paid out", out)  # held: never sent
    assert f"$ billing payouts report {run_id}" in out
    assert f"run {run_id}: limit_reached, 1 held (max_total 250.00 AZN)" in out
    assert re.search(r"po-babek\s*│\s*failed\s*│\s*80\.00 .*64 Credit amount limit", out)
    # the failed payout among the dead letters, beside the failed charges
    assert "4 shown, newest first" in out
    assert re.search(r"po-babek\S*\s.*po-babek\s+credit\s+80\.00 AZN\s+declined\s+open", out)
    # an immediate payout to a card number on stdin, shown only masked
    assert "--now --pan-stdin" in out and "payout po-prize-emil: paid" in out
    assert re.search(r"destination\s+416974\*{6}1778", out)
    # the ledger, and the verdict
    # and a Bizon credit to the card of a checkout order
    assert re.search(r"--now\s+--gateway\s+bizon\s+--order\s+\d+", out)
    assert "payout po-cashback-ilkin: paid" in out
    assert re.search(r"gateway ref\s+\d+", out)
    assert re.search(
        r"8 debits \(132\.47 AZN\) for 8 paid periods,\s+"
        r"4 credits \(193\.50 AZN\) for 4 paid\s+payouts",
        out,
    )
    assert "FAILED" not in out
    assert len(re.findall(r"^  ok     ", out, flags=re.MULTILINE)) == 21
    for check in (
        "sub-ilkin paid on Bizon (a rebill, then a charge) at once",
        "sub-jala declined softly on TXPG, then paid on the fallback, Bizon",
        "po-cashback-ilkin paid at once on Bizon, to the card of a checkout order",
        "po-babek declined (64 Credit amount limit): failed, in the dead letters",
        "po-deniz held back by the run's limit: still pending, never sent",
        "every paid payout was credited exactly once, the declined and the held one never",
        "every paid period was charged exactly once, the others never",
        "nothing the demo started is still running",
    ):
        assert f"  ok     {check}" in out, check
    assert "Demo complete" in out

    # nothing secret printed: no merchant password, no PAN in clear, no order password
    assert not find_leaks((out + err).splitlines(), log_capture.secrets)
    assert "416974******1778" in out  # cards appear masked
    kept = "".join(f.read_text(errors="replace") for f in logs.iterdir() if f.is_file())
    assert PAYOUT_PAN not in out + err + kept  # the card number given on stdin, anywhere
    # the worker's and the scheduler's logs were kept where asked (and are scanned too)
    assert (logs / "worker.log").is_file() and (logs / "scheduler.log").is_file()
