"""Every file in events/ ends as the README says, replayed in order on a freshly seeded workspace."""

from __future__ import annotations

from pathlib import Path

from conftest import PROJECT, load_event, object_keys, running, runs_of

from driftloop.cli import main


def outcome_of(world, delivery) -> dict:
    (arn,) = delivery.executions
    (run,) = [run for run in runs_of(world) if run["execution"] == arn]
    return run


def test_each_sample_event_ends_as_documented(workspace: Path) -> None:
    with running(workspace) as (world, runner):
        staged = set(object_keys(world, "incoming/")) | set(object_keys(world, "monitoring/"))

        outside = runner.replay(load_event("s3_object_created_outside_prefix.json", workspace))
        assert outside.executions == [] and "matched no rule" in outside.note

        scheduled = runner.replay(load_event("scheduled_periodic_check.json", workspace))
        assert scheduled.executions == [] and "DISABLED" in scheduled.note

        not_parquet = runner.replay(load_event("s3_object_created_not_parquet.json", workspace))
        runner.wait(timeout=300)
        failed = outcome_of(world, not_parquet)
        assert failed["outcome"] == "failed"
        assert failed["error"]["error"] == "InvalidInputError"
        assert "incoming/notes.txt" in failed["error"]["cause"] and "not a .parquet object" in failed["error"]["cause"]

        new_data = runner.replay(load_event("s3_object_created_new_data.json", workspace))
        runner.wait(timeout=600)
        assert outcome_of(world, new_data)["outcome"] == "promoted"

        report = runner.replay(load_event("s3_object_created_violation_report.json", workspace))
        runner.wait(timeout=300)
        run = outcome_of(world, report)
        assert run["trigger"]["type"] == "monitor_report"
        assert run["evidence"]["drift"]["violations"], "the report's violations are the run's evidence"
        assert run["outcome"] == "no_drift"
        assert "no new data" in " ".join(run["evidence"]["drift"]["reasons"])

        for name in ("cloudwatch_alarm_conversion_drop.json", "manual_retrain_request.json"):
            delivery = runner.replay(load_event(name, workspace))
            runner.wait(timeout=300)
            run = outcome_of(world, delivery)
            assert run["outcome"] == "no_drift", name
            assert run["evidence"]["drift"]["reasons"][0].startswith(("alarm ", "retraining requested")), name

        again = runner.replay(load_event("s3_object_created_new_data.json", workspace))
        runner.wait(timeout=300)
        duplicate = outcome_of(world, again)
        assert duplicate["outcome"] == "duplicate_ignored"
        assert "already admitted" in duplicate["evidence"]["admission"]["reason"]

        assert staged <= set(object_keys(world, "incoming/")) | set(object_keys(world, "monitoring/")), \
            "no input was deleted"
        quarantined = object_keys(world, "quarantine/")
        assert any(key.endswith("notes.txt") for key in quarantined), "the bad upload was copied to quarantine"


def test_runs_json_lists_every_recorded_run(workspace: Path, capsys) -> None:
    assert main(["runs", "--json", "--workspace", str(workspace), "--project", str(PROJECT)]) == 0
    printed = capsys.readouterr().out
    assert '"outcome": "promoted"' in printed and '"run_id"' in printed and '"steps"' in printed
