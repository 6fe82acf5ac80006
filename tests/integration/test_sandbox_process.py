"""``billing sandbox`` / ``python -m worker.sandbox`` as a real process: it prints its URL,
serves, keeps secrets out of its output, writes its ledger file, and stops on SIGTERM.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from worker.sandbox.command import sandbox as sandbox_command

PAN = "4169741330151778"


def test_help_lists_every_option() -> None:
    app = typer.Typer()
    app.command()(sandbox_command)
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--cards",
        "--faults",
        "--latency-ms",
        "--ledger-file",
        "--username",
        "--password",
        "--seed",
        "--log-requests",
        "--admin-remote",
    ):
        assert option in result.output
    assert "BILLING_SANDBOX_PASSWORD" in result.output
    assert "kapital123" not in result.output  # the default password is not shown


def test_billing_cli_has_the_sandbox_command() -> None:
    from worker.cli import app, registered_commands

    assert "sandbox" in registered_commands()
    result = CliRunner().invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0
    assert "TXPG sandbox" in result.output


@pytest.mark.slow
def test_serves_logs_no_secrets_and_stops_on_sigterm(
    make_sandbox_process: Any, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.jsonl"
    process = make_sandbox_process(
        ledger_file=ledger,
        username="merchant-7",
        password="Pa55-word-xyz",
        extra_args=("--log-requests",),
    )
    assert process.lines[0] == f"TXPG sandbox listening on {process.base_url}"
    passwords = []
    with httpx.Client(base_url=f"{process.base_url}/", auth=process.auth) as http:
        for type_rid, token in (
            ("Order_REC", {"storedId": 5125}),
            ("OCT", {"card": {"panBlock": {"data": PAN}}}),
        ):
            order = http.post(
                "order/", json={"order": {"typeRid": type_rid, "amount": "1", "currency": "AZN"}}
            )
            body = order.json()["order"]
            passwords.append(body["password"])
            params = {"password": body["password"]}
            path = "set-src-token" if type_rid == "Order_REC" else "set-dst-token"
            assert (
                http.post(
                    f"order/{body['id']}/{path}", params=params, json={"token": token}
                ).status_code
                == 200
            )
            tran = (
                {"phase": "Single"}
                if type_rid == "Order_REC"
                else {"phase": "Single", "type": "Credit"}
            )
            assert (
                http.post(
                    f"order/{body['id']}/exec-tran", params=params, json={"tran": tran}
                ).status_code
                == 200
            )
        assert http.get("order/1", auth=("merchant-7", "nope")).status_code == 401
    assert process.stop() == 0
    output = "\n".join(process.lines)
    assert output.endswith("TXPG sandbox stopped")
    assert output.count("sandbox_request_served") == 7
    assert "/set-dst-token" in output
    for secret in (*passwords, "Pa55-word-xyz", PAN, "password="):
        assert secret not in output
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(e["tran_type"], e["card"]) for e in entries] == [
        ("Purchase", "416974******1778"),
        ("Credit", "416974******1778"),
    ]


@pytest.mark.slow
def test_cards_and_faults_files_and_a_killed_sandbox_keeps_its_ledger(
    make_sandbox_process: Any, tmp_path: Path
) -> None:
    cards = tmp_path / "cards.json"
    cards.write_text(
        json.dumps(
            {"cards": [{"storedId": 1, "displayName": "416974******0001", "expiry": "1230"}]}
        )
    )
    faults = tmp_path / "faults.json"
    faults.write_text(
        json.dumps({"faults": [{"kind": "commit-then-drop", "endpoint": "exec-tran", "times": 1}]})
    )
    ledger = tmp_path / "ledger.jsonl"
    process = make_sandbox_process(cards=cards, faults=faults, ledger_file=ledger)
    with httpx.Client(base_url=f"{process.base_url}/", auth=process.auth) as http:
        body = http.post(
            "order/", json={"order": {"typeRid": "Order_REC", "amount": "7.77", "currency": "AZN"}}
        ).json()["order"]
        params = {"password": body["password"]}
        demo = http.post(
            f"order/{body['id']}/set-src-token", params=params, json={"token": {"storedId": 5125}}
        )
        assert demo.json()["errorCode"] == "InvalidToken"  # the file replaced the demo cards
        http.post(
            f"order/{body['id']}/set-src-token", params=params, json={"token": {"storedId": 1}}
        )
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(
                f"order/{body['id']}/exec-tran", params=params, json={"tran": {"phase": "Single"}}
            )
    process.kill()
    (entry,) = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert (entry["order_id"], entry["amount"], entry["stored_id"]) == (body["id"], "7.77", 1)


@pytest.mark.slow
def test_a_bad_cards_file_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    cards = tmp_path / "cards.json"
    cards.write_text('{"cards": [{"storedId": 1, "expiry": "1230"}]}')
    result = subprocess.run(
        [sys.executable, "-m", "worker.sandbox", "--port", "0", "--cards", str(cards)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "displayName must be a masked PAN" in result.stderr
