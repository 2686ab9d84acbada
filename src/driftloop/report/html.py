"""The report as one self-contained HTML page: inline CSS, charts as base64 PNG, no external resources."""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from driftloop.report.charts import format_usd
from driftloop.report.decisions import DecisionRow, as_interval
from driftloop.report.extract import RunSummary, parse_time, run_anchor
from driftloop.report.reading import ReportContent

OUTCOME_COLOURS = {
    "promoted": "#2e7d32", "rolled_back": "#d84315", "failed": "#c62828", "challenger_rejected": "#ef6c00",
    "no_drift": "#607d8b", "deferred": "#78909c", "duplicate_ignored": "#90a4ae",
}
DECISION_COLOURS = {"retrain": "#c62828", "warn": "#ef6c00", "none": "#2e7d32"}
CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2933;background:#f5f7fa;
font-size:14px;line-height:1.45}
main{max-width:1240px;margin:0 auto;padding:1.5rem 2rem 4rem}
header.top{background:#1f2933;color:#fff;padding:1.2rem 2rem}
header.top h1{margin:0;font-size:1.5rem}header.top p{margin:.3rem 0 0;color:#cbd2d9}
nav{background:#323f4b;padding:.45rem 2rem}nav a{color:#e4e7eb;margin-right:1.2rem;text-decoration:none}
nav a:hover{text-decoration:underline}
h2{margin:2.2rem 0 .6rem;font-size:1.25rem;border-bottom:2px solid #d9e2ec;padding-bottom:.25rem}
h3{margin:0 0 .5rem;font-size:1.1rem}h4{margin:1.1rem 0 .35rem;font-size:.95rem;color:#3e4c59}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:.8rem;margin-top:1rem}
.card{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:.7rem .9rem}
.card .label{color:#616e7c;font-size:.8rem;text-transform:uppercase;letter-spacing:.03em}
.card .value{font-size:1.35rem;font-weight:600;margin:.15rem 0}.card .sub{color:#52606d;font-size:.85rem}
table{border-collapse:collapse;width:100%;background:#fff;margin:.4rem 0 .8rem;font-size:.88rem}
th,td{border:1px solid #d9e2ec;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f7;font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:600;background:#f0f4f8}
.badge{display:inline-block;color:#fff;border-radius:3px;padding:.05rem .45rem;font-size:.8rem;font-weight:600;
white-space:nowrap}
.muted{color:#7b8794}.small{font-size:.82rem}ul.plain{margin:0;padding-left:1rem}.bad{color:#c62828;font-weight:600}.good{color:#2e7d32;font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.82rem;word-break:break-all}
figure{margin:.4rem 0 1rem;background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:.5rem}
figure img{width:100%;height:auto;display:block}figcaption{color:#52606d;font-size:.85rem;margin-top:.3rem}
section.run{background:#fff;border:1px solid #d9e2ec;border-radius:6px;padding:1rem 1.2rem;margin:1rem 0}
section.run table{background:#fff}
.why{background:#fffbea;border-left:4px solid #f0b429;padding:.5rem .9rem;margin:.6rem 0}
.why p{margin:.25rem 0}.why ul{margin:.2rem 0 .2rem 1.2rem;padding:0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.3rem 0}
dl.facts dt{color:#616e7c}dl.facts dd{margin:0}
.chain{display:flex;flex-wrap:wrap;align-items:stretch;gap:.4rem;margin:.6rem 0}
.chain .node{background:#fff;border:1px solid #9fb3c8;border-radius:6px;padding:.5rem .7rem;min-width:210px;
max-width:290px;font-size:.85rem}
.chain .node.current{border:2px solid #2e7d32;background:#f1f8f1}.chain .arrow{align-self:center;color:#829ab1;
font-size:1.4rem}
a{color:#1f5fa8}
tr.why-row td{border-top:none;color:#3e4c59;background:#fbfcfd}
"""


@dataclass(frozen=True)
class Charts:
    """PNG bytes of each chart; None when there is nothing to draw."""

    conversion: bytes | None
    drift: bytes | None
    costs: bytes | None


def _e(value: Any) -> str:
    return escape(str(value))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.{digits}g}"


def _signed(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _time(value: Any) -> str:
    moment = value if isinstance(value, datetime) else parse_time(value)
    return "–" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _badge(text: str | None, colours: dict[str, str]) -> str:
    if not text:
        return "<span class='muted'>–</span>"
    return f"<span class='badge' style='background:{colours.get(text, '#52606d')}'>{_e(text)}</span>"


def _table(headers: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{cell}</td>"
                                    for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(pairs: list[tuple[str, str]]) -> str:
    return "<dl class='facts'>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _figure(png: bytes | None, alt: str, caption: str, empty: str) -> str:
    if png is None:
        return f"<p class='muted'>{_e(empty)}</p>"
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{_e(alt)}'>"
            f"<figcaption>{caption}</figcaption></figure>")


def _get(document: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(document, dict):
            return None
        document = document.get(name)
    return document


def _run_link(content: ReportContent, run_id: str | None) -> str:
    if not run_id:
        return "<span class='muted'>–</span>"
    label = content.labels.get(run_id)
    if label is None:
        return f"<code>{_e(run_id)}</code>"
    return f"<a href='#{run_anchor(run_id)}'>{_e(label)}</a>"


# -- header and summary ------------------------------------------------------------------------
def _header(content: ReportContent) -> str:
    models = ", ".join(content.model_names) or "no model yet"
    return (f"<header class='top'><h1>driftloop report — {_e(models)}</h1>"
            f"<p>{_e(content.source.location)} · generated {_e(_time(content.generated_at))}</p></header>"
            "<nav><a href='#runs'>Runs</a><a href='#decisions'>Retrain decisions</a>"
            "<a href='#conversion'>Conversion</a><a href='#drift'>Drift</a>"
            "<a href='#costs'>Training costs</a><a href='#lineage'>Lineage</a><a href='#details'>Run details</a>"
            "</nav>")


def _cards(content: ReportContent) -> str:
    outcomes = Counter(run.outcome for run in content.runs)
    champions = content.lineage.champions
    champion = champions[-1] if champions else None
    served = content.conversion.total_served
    cards = [
        ("Runs", f"{len(content.runs)}", ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "none yet"),
        ("Current champion", _run_link(content, champion.run_id) if champion else "–",
         f"promoted {_e(_time(champion.promoted_at))}<br><code>{_e(champion.sagemaker_model or '')}</code>"
         if champion else "no model promoted yet"),
        ("Training cost", _e(format_usd(content.costs.total_usd)),
         f"{len(content.costs.rows)} jobs · spot saved {_e(format_usd(content.costs.total_saving_usd))}"),
        ("Feedback", f"{served:,}", f"requests served across {len(content.conversion.variants)} variants"),
    ]
    return "<div class='cards'>" + "".join(
        f"<div class='card'><div class='label'>{_e(label)}</div><div class='value'>{value}</div>"
        f"<div class='sub'>{sub}</div></div>" for label, value, sub in cards) + "</div>"


# -- runs table --------------------------------------------------------------------------------
def _gate_cell(run: RunSummary) -> str:
    if run.gate_passed is None:
        return "<span class='muted'>not evaluated</span>"
    verdict = "<span class='good'>passed</span>" if run.gate_passed else "<span class='bad'>failed</span>"
    ci = f"<br><span class='small'>Δ 95% CI [{_signed(run.gate_ci[0])}, {_signed(run.gate_ci[1])}]</span>" \
        if run.gate_ci else ""
    return (f"{verdict} <span class='small'>{_e(run.gate_metric)} {_num(run.gate_challenger, 3)} vs "
            f"{_e(run.gate_baseline)} {_num(run.gate_champion, 3)}</span>{ci}")


def _ab_cell(run: RunSummary) -> str:
    if run.ab_action is None:
        return "<span class='muted'>no A/B test</span>"
    colour = {"promote": "good", "rollback": "bad"}.get(run.ab_action, "")
    boundary = (f", z={_num(run.ab_z, 2)} vs ±{_num(run.ab_critical_z, 2)}" if run.ab_critical_z is not None
                else "")
    rates = (f"<br><span class='small'>conversion {_pct(run.ab_champion_rate)} → {_pct(run.ab_challenger_rate)}"
             f"{boundary}</span>") if run.ab_champion_rate is not None else ""
    return f"<span class='{colour}'>{_e(run.ab_action)}</span>{rates}"


def _runs_table(content: ReportContent) -> str:
    if not content.runs:
        return "<p class='muted'>No run records under runs/ yet.</p>"
    rows = []
    for run in content.runs:
        drifted = ", ".join(run.drifted_features)
        error = f"<br><span class='small bad'>{_e(run.error[:160])}</span>" if run.error else ""
        rows.append([
            _run_link(content, run.run_id), _e(_time(run.started_at)), _e(run.trigger),
            _badge(run.drift_decision, DECISION_COLOURS) + (f"<br><span class='small'>{_e(drifted)}</span>"
                                                            if drifted else ""),
            _gate_cell(run), _ab_cell(run), _badge(run.outcome, OUTCOME_COLOURS) + error,
            _e(format_usd(run.cost_usd)) if run.cost_usd is not None else "–",
        ])
    return _table(["run", "started", "trigger", "drift", "offline gate", "A/B test", "outcome", "cost"], rows,
                  numeric=(7,))


# -- retrain decisions -------------------------------------------------------------------------
def _interval(value: float | None, interval: tuple[float, float] | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    text = f"{value:.{digits}f}"
    return text + (f"<br><span class='small'>[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]</span>"
                   if interval else "")


def _usd(value: float | None) -> str:
    return "–" if value is None else _e(format_usd(value))


def _policy_cell(row: DecisionRow) -> str:
    if row.policy is None:
        return "<span class='muted'>not asked</span>"
    verdict = "<span class='bad'>retrain</span>" if row.policy_retrain else "<span class='good'>keep</span>"
    forced = f"<br><span class='small'>overridden: {_e(row.forced_by[0][:120])}</span>" if row.forced_by else ""
    return f"{_e(row.policy)}: {verdict}{forced}"


def _decisions_table(content: ReportContent) -> str:
    if not content.decisions:
        return "<p class='muted'>No trigger has reached the retrain decision yet.</p>"
    headers = ["run", "trigger", "policy says", "decision", "expected NDCG@10 gain [95%]", "staleness cost so far",
               "retraining cost", "champion NDCG@10 on the upload [95%]", "users scored",
               "purchases of new items / users", "days · interactions since training", "data drift"]
    numeric = (4, 5, 6, 7, 8, 9, 10)
    rows = []
    for row in content.decisions:
        accuracy = _interval(row.ndcg_at_10, row.ndcg_ci) + (
            f"<br><span class='small muted'>{_e(row.accuracy_reason)}</span>" if row.accuracy_reason else "")
        age = (f"{_num(row.days_since_training, 3)} d · {_num(row.interactions_since_training)}"
               if row.days_since_training is not None else "–")
        cells = [_run_link(content, row.run_id), _e(row.trigger), _policy_cell(row),
                 _badge(row.decision, DECISION_COLOURS), _interval(row.expected_gain, row.gain_ci, 4),
                 _usd(row.staleness_cost), _usd(row.retraining_cost), accuracy, _num(row.users),
                 f"{_pct(row.item_novelty)} / {_pct(row.user_novelty)}", age, _e(row.data_drift or "–")]
        rows.append("<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{cell}</td>"
                                     for i, cell in enumerate(cells)) + "</tr>")
        rows.append(f"<tr class='why-row'><td></td><td colspan='{len(headers) - 1}' class='small'>"
                    f"{_e(row.why or '–')}</td></tr>")
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{_e(h)}</th>" for i, h in enumerate(headers))
    return f"<table class='decisions'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _plain(value: Any) -> str:
    """A parameter value as a reader would write it: numbers to 4 significant digits, no Python repr."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "(" + ", ".join(f"{key} {_plain(item)}" for key, item in sorted(value.items())) + ")"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_plain(item) for item in value) + "]"
    return str(value)


def _decision_details(retrain: dict[str, Any]) -> str:
    if not retrain:
        return ""
    reasons = "".join(f"<li>{_e(reason)}</li>" for reason in retrain.get("reasons") or [])
    parameters = "".join(f"<li><b>{_e(k)}</b> {_e(_plain(v))}</li>"
                         for k, v in sorted((retrain.get("parameters") or {}).items()))
    verdict = "retrain" if retrain.get("retrain") else "keep the champion"
    gain = _interval(retrain.get("expected_gain"), as_interval(retrain.get("gain_ci")), 4)
    facts = [("policy", f"{_e(retrain.get('policy'))}: {verdict}"), ("expected NDCG@10 gain", gain),
             ("staleness cost so far", _usd(retrain.get("staleness_cost"))),
             ("retraining cost", _usd(retrain.get("retraining_cost"))),
             ("parameters", f"<ul class='small plain'>{parameters}</ul>" if parameters else "–")]
    if retrain.get("report_key"):
        facts.append(("full evidence", f"<code>{_e(retrain['report_key'])}</code>"))
    return "<h4>Retrain decision</h4>" + _facts(facts) + (f"<ul>{reasons}</ul>" if reasons else "")


# -- costs and lineage -------------------------------------------------------------------------
def _costs_table(content: ReportContent) -> str:
    costs = content.costs
    if not costs.rows:
        return "<p class='muted'>No training job has finished yet.</p>"
    rows = [[_run_link(content, row.run_id), f"<code>{_e(row.job_name)}</code>", _e(row.instance_type),
             "yes" if row.spot else "no", _num(row.training_seconds), _num(row.billable_seconds),
             _e(format_usd(row.on_demand_cost_usd)), _e(format_usd(row.cost_usd)),
             _e(format_usd(row.spot_saving_usd))] for row in costs.rows]
    table = _table(["run", "training job", "instance", "spot", "training s", "billable s", "on-demand", "paid",
                    "saved"], rows, numeric=(4, 5, 6, 7, 8))
    total = (f"<tr class='total'><td colspan='6'>total ({len(costs.rows)} jobs)</td>"
             f"<td class=num>{_e(format_usd(costs.total_on_demand_usd))}</td>"
             f"<td class=num>{_e(format_usd(costs.total_usd))}</td>"
             f"<td class=num>{_e(format_usd(costs.total_saving_usd))}</td></tr>")
    return table.replace("</tbody>", total + "</tbody>")


def _lineage(content: ReportContent) -> str:
    lineage, datasets = content.lineage, {d.version: d for d in content.lineage.datasets}
    parts = ["<h4>Champions, in order of promotion</h4>"]
    champions = lineage.champions
    if champions:
        nodes = []
        for model in champions:
            dataset = datasets.get(model.dataset_version or "")
            rows = f"{dataset.rows_out:,} rows" if dataset else ""
            current = " current" if model.status == "champion" else ""
            nodes.append(
                f"<div class='node{current}'><b>{_run_link(content, model.run_id)}</b> "
                f"{'<b>serving now</b>' if current else _e(model.status)}<br>"
                f"promoted {_e(_time(model.promoted_at))}<br>model <code>{_e(model.sagemaker_model)}</code><br>"
                f"data <code>{_e((model.dataset_version or '').rsplit('/', 1)[-1])}</code> {_e(rows)}</div>")
        parts.append("<div class='chain'>" + "<span class='arrow'>→</span>".join(nodes) + "</div>")
    else:
        parts.append("<p class='muted'>No model has been promoted yet.</p>")
    parts.append("<h4>Dataset versions</h4>")
    if lineage.datasets:
        parts.append(_table(
            ["run", "version", "built from", "rows in", "rows out", "duplicates dropped", "quarantined",
             "content hash", "holdout from"],
            [[_run_link(content, d.run_id), f"<code>{_e(d.version)}</code>",
              f"<code>{_e(d.previous)}</code>" if d.previous else "<span class='muted'>(first version)</span>",
              _num(d.rows_in), _num(d.rows_out), _num(d.duplicates_dropped), _num(d.quarantined),
              f"<code title='{_e(d.content_hash)}'>{_e(d.content_hash[:16])}…</code>", _e(_time(d.holdout_from))]
             for d in lineage.datasets], numeric=(3, 4, 5, 6)))
    else:
        parts.append("<p class='muted'>No dataset version has been built yet.</p>")
    parts.append("<h4>Models: training job → artifact → registered package → endpoint model</h4>")
    if lineage.models:
        parts.append(_table(
            ["run", "trained on", "training job", "model artifact", "model package", "endpoint model", "status"],
            [[_run_link(content, m.run_id), f"<code>{_e((m.dataset_version or '–').rsplit('/', 1)[-1])}</code>",
              f"<code>{_e(m.job_name)}</code>", f"<code>{_e(m.model_artifact or '–')}</code>",
              f"<code>{_e(m.model_package_arn or '–')}</code>", f"<code>{_e(m.sagemaker_model or '–')}</code>",
              _badge(m.status, {**OUTCOME_COLOURS, "champion": "#2e7d32", "retired": "#607d8b"})]
             for m in lineage.models]))
    else:
        parts.append("<p class='muted'>No model has been trained yet.</p>")
    return "".join(parts)


# -- run details -------------------------------------------------------------------------------
def _why(record: dict[str, Any]) -> str:
    evidence = record.get("evidence", {})
    lines = []
    admission = evidence.get("admission") or {}
    if admission.get("reason"):
        lines.append(f"<p><b>Admission:</b> {_e(admission['reason'])}</p>")
    drift = evidence.get("drift") or {}
    if drift:
        reasons = "".join(f"<li>{_e(reason)}</li>" for reason in drift.get("reasons") or [])
        question = "Why retrain?" if drift.get("decision") == "retrain" else "Why not retrain?"
        lines.append(f"<p><b>{question}</b> drift decision {_badge(drift.get('decision'), DECISION_COLOURS)}"
                     f"</p>{'<ul>' + reasons + '</ul>' if reasons else ''}")
    evaluation = evidence.get("evaluation") or {}
    if evaluation:
        verdict = "passed" if evaluation.get("passed") else "failed"
        lines.append(f"<p><b>Offline gate {verdict}:</b> {_e(evaluation.get('reason', ''))}</p>")
    ab = evidence.get("ab") or {}
    if ab:
        lines.append(f"<p><b>A/B test — {_e(ab.get('action'))}:</b> {_e(ab.get('reason', ''))}</p>")
    champion = _get(evidence, "promotion", "champion")
    if champion:
        lines.append(f"<p><b>Promoted:</b> <code>{_e(champion.get('sagemaker_model'))}</code> serves 100% since "
                     f"{_e(_time(champion.get('promoted_at')))}; previous champion "
                     f"{_run_link_plain(champion.get('previous_champion'))}.</p>")
    rollback = evidence.get("rollback") or {}
    if rollback:
        lines.append("<p><b>Rollback:</b> " + _e("; ".join(rollback.get("actions") or [])) + "</p>")
    if record.get("error"):
        error = record["error"]
        where = f" in {_e(error['step'])}" if error.get("step") else ""
        lines.append(f"<p class='bad'>Failed{where}: {_e(error.get('error'))}: {_e(error.get('cause'))}</p>")
    if record.get("restore_error"):
        error = record["restore_error"]
        lines.append(f"<p class='bad'>Restoring the champion also failed: {_e(error.get('error'))}: "
                     f"{_e(error.get('cause'))}</p>")
    return "<div class='why'>" + "".join(lines) + "</div>" if lines else ""


def _run_link_plain(run_id: str | None) -> str:
    return f"<a href='#{run_anchor(run_id)}'><code>{_e(run_id)}</code></a>" if run_id else "none"


def _drift_details(drift: dict[str, Any], report: dict[str, Any] | None) -> str:
    if not drift:
        return ""
    parts = ["<h4>Drift</h4>"]
    rows_info = drift.get("rows") or {}
    facts = [("uploads compared", _num(drift.get("uploads"))),
             ("rows", f"reference {_num(rows_info.get('reference'))}, current {_num(rows_info.get('current'))}"
              if rows_info else "–")]
    if drift.get("report_key"):
        facts.append(("drift report", f"<code>{_e(drift['report_key'])}</code> (and drift.html beside it)"))
    parts.append(_facts(facts))
    features = drift.get("features") or {}
    if features:
        policy = (report or {}).get("policy") or {}
        detailed = (report or {}).get("features") or {}
        overrides = policy.get("overrides") or {}
        rows = []
        for name, feature in sorted(features.items(), key=lambda item: -(item[1].get("js_distance") or 0)):
            own = overrides.get(name, {})
            more = detailed.get(name) or {}
            marker = "<span class='bad'>drifted</span>" if feature.get("drifted") else _e(more.get("status", "stable"))
            rows.append([
                f"<b>{_e(name)}</b>" if feature.get("drifted") else _e(name), _num(feature.get("psi")),
                _num(own.get("psi_threshold", policy.get("psi_threshold"))), _num(feature.get("js_distance")),
                _num(own.get("js_threshold", policy.get("js_threshold"))), _num(more.get("adjusted_pvalue"), 3),
                marker, _e(more.get("reason", ""))])
        parts.append(_table(["feature", "PSI", "PSI threshold", "JS distance", "JS threshold", "adjusted p",
                             "status", "reason"], rows, numeric=(1, 2, 3, 4, 5)))
        if policy:
            parts.append(f"<p class='small muted'>Policy: significance α={_num(policy.get('alpha'))} "
                         f"({_e(policy.get('correction', ''))}), at least {_num(policy.get('min_samples'))} values "
                         f"per side, retrain on ≥{_num(policy.get('retrain_min_features'))} drifted features.</p>")
    for title, items in (("Unreadable uploads", drift.get("unreadable")), ("Model Monitor violations",
                                                                              drift.get("violations"))):
        if items:
            parts.append(f"<p><b>{title}:</b></p><ul>" + "".join(f"<li><code>{_e(item)}</code></li>"
                                                               for item in items) + "</ul>")
    return "".join(parts)


def _merge_details(merge: dict[str, Any]) -> str:
    if not merge:
        return ""
    quarantined = merge.get("quarantined") or []
    return "<h4>Training data</h4>" + _facts([
        ("new version", f"<code>{_e(merge.get('dataset_dir'))}</code>"),
        ("built from", f"<code>{_e(merge.get('previous_version'))}</code>" if merge.get("previous_version")
         else "the uploads alone (first version)"),
        ("rows", f"{_num(merge.get('rows_in'))} in → {_num(merge.get('rows_out'))} out, "
                 f"{_num(merge.get('duplicates_dropped'))} duplicates dropped"),
        ("quarantined", _e(", ".join(str(q) for q in quarantined)) if quarantined else "nothing"),
        ("content hash", f"<code>{_e(merge.get('content_hash'))}</code>"),
        ("manifest", f"<code>{_e(merge.get('manifest_key'))}</code>"),
        ("holdout from", _e(_time(merge.get("holdout_from")))),
    ])


def _training_details(training: dict[str, Any]) -> str:
    if not training:
        return ""
    cost = training.get("cost") or {}
    facts = [
        ("job", f"<code>{_e(training.get('job_name'))}</code> (attempt {_num(training.get('attempt'))}"
                f"{', adopted a live job' if training.get('adopted') else ''})"),
        ("status", _e(training.get("status")) + (f" — {_e(training['failure_reason'])}"
                                                  if training.get("failure_reason") else "")),
        ("model artifact", f"<code>{_e(training.get('model_artifact', '–'))}</code>"),
        ("code", f"<code>{_e(training.get('source_uri', '–'))}</code>"),
    ]
    if cost:
        facts.append(("cost", f"{_e(format_usd(cost.get('cost_usd') or 0))} on {_num(cost.get('instance_count'))}× "
                              f"{_e(cost.get('instance_type'))} ({'spot' if cost.get('spot') else 'on-demand'}), "
                              f"{_num(cost.get('billable_seconds'))} billable of {_num(cost.get('training_seconds'))}"
                              f" s; on-demand {_e(format_usd(cost.get('on_demand_cost_usd') or 0))}, saved "
                              f"{_e(format_usd(cost.get('spot_saving_usd') or 0))} "
                              f"<span class='muted'>({_e(cost.get('price_source', ''))})</span>"))
    for failure in training.get("earlier_failures") or []:
        facts.append(("earlier attempt", f"<code>{_e(failure.get('job_name'))}</code> {_e(failure.get('status'))}: "
                                         f"{_e(failure.get('failure_reason'))}"))
    return "<h4>Training</h4>" + _facts(facts)


def _evaluation_details(evaluation: dict[str, Any]) -> str:
    if not evaluation:
        return ""
    metrics = evaluation.get("metrics") or {}
    baseline = evaluation.get("baseline", "champion")
    differences = evaluation.get("differences") or {}
    rows = []
    for name in sorted(set(metrics.get("challenger", {})) | set(differences)):
        difference = differences.get(name) or {}
        primary = name == evaluation.get("primary_metric")
        rows.append([
            f"<b>{_e(name)}</b> (gate)" if primary else _e(name), _num(_get(metrics, "champion", name)),
            _num(_get(metrics, "challenger", name)), _signed(difference.get("mean_difference")),
            f"[{_signed(difference.get('ci_low'))}, {_signed(difference.get('ci_high'))}]" if difference else "–",
            _num(difference.get("fraction_not_positive"), 3)])
    return ("<h4>Offline evaluation</h4>" + _facts([
        ("compared with", _e(baseline)), ("holdout users", _num(evaluation.get("holdout_users"))),
        ("model package", f"<code>{_e(evaluation.get('model_package_arn', '–'))}</code>"),
    ]) + _table(["metric @ holdout", baseline, "challenger", "difference", "95% CI of difference",
                 "share of resamples ≤ 0"], rows, numeric=(1, 2, 3, 5)))


def _ab_details(ab: dict[str, Any], stages: list[dict[str, Any]]) -> str:
    """Every look of the A/B test in order, with the stratified test, its boundary and the test's power."""
    if not ab and not stages:
        return ""
    rows = []
    for stage in stages or [ab]:
        evidence = stage.get("evidence") or {}
        test, power = evidence.get("test") or {}, evidence.get("power") or {}
        weights = ", ".join(f"{k} {v}%" for k, v in (stage.get("weights") or {}).items())
        counts = [evidence.get(variant) or {} for variant in ("champion", "challenger")]
        rows.append([
            _num(stage.get("stage_index")), _num(stage.get("look", stage.get("waits"))),
            _num(evidence.get("challenger_percent")),
            _e(weights),
            *[f"{_num(c.get('conversions'))}/{_num(c.get('matured'))} = {_pct(c.get('conversion_rate'))}"
              if c else "–" for c in counts],
            f"{_num(test.get('z'), 2)} vs ±{_num(test.get('critical_z'), 2)}" if test.get("critical_z") else "–",
            _pct(power.get("minimum_detectable_lift_now")), _pct(power.get("minimum_detectable_lift_at_end")),
            _e(stage.get("action")), _e(stage.get("reason", ""))])
    config = _get(ab, "evidence", "config") or {}
    breaches = _get(ab, "evidence", "guardrail_breaches") or []
    note = (
        "<p class='small muted'>Test: stratified difference z (inverse-variance weights) over the windows in "
        "which both variants served, against an O'Brien–Fleming alpha-spending boundary "
        f"(α={_num(config.get('alpha'))} over the whole rollout); minimum lift {_pct(config.get('minimum_lift'))} "
        f"planned at {_pct(config.get('power'))} power; at least {_num(config.get('min_samples_per_variant'))} "
        f"matured requests per variant; guardrails: error rate ≤ {_pct(config.get('max_error_rate'))}, p95 latency "
        f"≤ {_num(config.get('max_latency_p95_ms'))} ms. Counts are all matured requests; the test uses only "
        "concurrent windows. See docs/ab-testing.md.</p>") if config else ""
    if breaches:
        note += "<p class='bad'>Guardrail breaches: " + _e("; ".join(map(str, breaches))) + "</p>"
    return ("<h4>A/B test, look by look</h4>" + _table(
        ["stage", "look", "challenger %", "weights after", "champion conversions", "challenger conversions",
         "z vs boundary", "detectable lift now", "detectable lift by the end", "action", "reason"],
        rows, numeric=(0, 1, 2, 6, 7, 8))
        + note)


def collapse_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive visits of one state (a polling loop) as one row: visits counted, attempts and seconds
    summed, errors kept, status of the last visit."""
    rows: list[dict[str, Any]] = []
    for step in steps:
        last = rows[-1] if rows else None
        if last is not None and last["name"] == step.get("name"):
            last["visits"] += 1
            last["attempts"] += step.get("attempts") or 0
            last["seconds"] += step.get("duration_seconds") or 0.0
            last["errors"] += step.get("errors") or []
            last["status"] = step.get("status")
        else:
            rows.append({"name": step.get("name"), "status": step.get("status"), "visits": 1,
                         "attempts": step.get("attempts") or 0, "seconds": step.get("duration_seconds") or 0.0,
                         "errors": list(step.get("errors") or [])})
    return rows


def _steps(record: dict[str, Any]) -> str:
    steps = collapse_steps(record.get("steps") or [])
    if not steps:
        return ""
    rows = [[_e(step["name"]) + (f" <span class='muted'>×{step['visits']}</span>" if step["visits"] > 1 else ""),
             _e(step["status"]), _num(step["attempts"]), f"{step['seconds']:.3g}",
             "<br>".join(f"{_e(e.get('error'))}: {_e(str(e.get('cause', ''))[:300])}" for e in step["errors"])]
            for step in steps]
    return "<h4>Steps</h4>" + _table(["state", "status", "attempts", "seconds", "errors"], rows, numeric=(2, 3))


def _run_details(content: ReportContent, record: dict[str, Any]) -> str:
    run_id, evidence = record["run_id"], record.get("evidence", {})
    trigger = record.get("trigger") or {}
    trigger_text = ", ".join(f"{k}={v}" for k, v in trigger.items() if k != "detail" and v not in (None, ""))
    if trigger.get("detail"):
        trigger_text += f", detail={trigger['detail']}"
    started, finished = parse_time(record.get("started_at")), parse_time(record.get("finished_at"))
    duration = f"{(finished - started).total_seconds():,.1f} s" if started and finished else "–"
    head = (f"<section class='run' id='{run_anchor(run_id)}'><h3>{_e(content.labels[run_id])} · "
            f"<code>{_e(run_id)}</code> {_badge(record.get('outcome'), OUTCOME_COLOURS)}</h3>")
    facts = _facts([
        ("started / finished", f"{_e(_time(started))} → {_e(_time(finished))} ({duration})"),
        ("trigger", f"<code>{_e(trigger_text)}</code>"),
        ("execution", f"<code>{_e(record.get('execution', '–'))}</code>"),
        ("run record", f"<code>{_e(record.get('record_uri', '–'))}</code>"),
    ])
    return (head + facts + _why(record)
            + _decision_details(_get(evidence, "drift", "retrain") or {})
            + _drift_details(evidence.get("drift") or {}, content.source.drift_reports.get(run_id))
            + _merge_details(evidence.get("merge") or {}) + _training_details(evidence.get("training") or {})
            + _evaluation_details(evidence.get("evaluation") or {})
            + _ab_details(evidence.get("ab") or {}, content.source.ab_stages.get(run_id, []))
            + _steps(record) + "</section>")


# -- the page ----------------------------------------------------------------------------------
def render_page(content: ReportContent, charts: Charts) -> str:
    bucket = content.conversion.bucket.label
    drift_caption = ("One point per run that compared new data with the champion's baseline. Dashed: the "
                     "threshold that run applied to the feature (per-feature overrides included); ringed: the "
                     "feature drifted (effect at or above a threshold and significant after correction).")
    conversion_caption = (f"Share of served requests that converted, per {_e(bucket)}; dashed lines mark "
                          "promotions (green) and rollbacks (red); shaded spans are A/B tests. The latest buckets "
                          f"may still gain conversions. {_e(content.source.feedback_origin.describe())}")
    body = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>driftloop report — {_e(', '.join(content.model_names) or 'no runs')}</title>",
        f"<style>{CSS}</style></head><body>", _header(content), "<main>", _cards(content),
        "<h2 id='runs'>Runs</h2>", _runs_table(content),
        "<h2 id='decisions'>Retrain decisions</h2>",
        "<p class='small muted'>Every trigger that reached the decision: what the champion scored on the new upload "
        "(given each customer's purchases since training), the expected gain of a fresh model, the staleness "
        "cost accumulated since training against the cost of retraining, and the policy's verdict. First "
        "deployments, manual requests, alarms, Model Monitor reports and conversion drops retrain whatever the "
        "policy says (\"overridden\").</p>",
        _decisions_table(content),
        "<h2 id='conversion'>Conversion per variant over time</h2>",
        _figure(charts.conversion, "conversion rate per variant over time", conversion_caption,
                "No feedback yet. " + content.source.feedback_origin.describe()),
        "<h2 id='drift'>Drift score per feature and run</h2>",
        _figure(charts.drift, "PSI and JS distance per feature per run", drift_caption,
                "No run has compared new data with a baseline yet."),
        "<h2 id='costs'>Training costs</h2>",
        _figure(charts.costs, "training cost per run", "Paid cost per training job; hatched: saved by spot.",
                "No training job has finished yet."),
        _costs_table(content),
        "<h2 id='lineage'>Lineage of datasets and models</h2>", _lineage(content),
        "<h2 id='details'>Run details</h2>",
        *[_run_details(content, record) for record in reversed(content.source.records)],
        "</main></body></html>",
    ]
    return "\n".join(body)
