"""Machine facts, verdicts against the issue's targets, the stdout table and the JSON files."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.bench.run import BenchConfig
from tests.bench.stats import percentile

__all__ = ["machine_facts", "render", "verdicts", "write_json"]


def machine_facts() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("aiortc", "aioice", "av", "opencv-contrib-python-headless", "fastapi", "uvicorn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": versions,
        "loadavg_at_start": load,
    }


def _verdict(what: str, target: str, measured: Any, met: bool | None) -> dict[str, Any]:
    return {"what": what, "target": target, "measured": measured, "met": met}


def verdicts(result: dict[str, Any], cfg: BenchConfig) -> list[dict[str, Any]]:
    out = []
    ours = result.get("drift", {}).get("fieldsight", {})
    joins = ours.get("join_to_first_frame_ms", [])
    if joins:
        worst = max(joins)
        out.append(
            _verdict(
                "join -> first frame, aiortc mentor (idle server)",
                f"<= {cfg.join_target_ms:.0f} ms",
                f"{worst} ms",
                worst <= cfg.join_target_ms,
            )
        )
    ramp_joins = [
        j
        for s in result.get("ramp", {}).get("fieldsight", {}).get("steps", [])
        for j in s["join_to_first_frame_ms"]
    ]
    if ramp_joins:
        p95 = percentile(ramp_joins, 95)
        out.append(
            _verdict(
                "join -> first frame, aiortc mentor (during the ramp), p95",
                f"<= {cfg.join_target_ms:.0f} ms",
                f"{p95} ms (n={len(ramp_joins)}, max {max(ramp_joins)})",
                p95 is not None and p95 <= cfg.join_target_ms,
            )
        )
    browser = result.get("browser", {})
    if browser.get("join_to_first_frame_ms") is not None:
        value = browser["join_to_first_frame_ms"]
        out.append(
            _verdict(
                "join -> first frame, Chromium page",
                f"<= {cfg.join_target_ms:.0f} ms",
                f"{value} ms",
                value <= cfg.join_target_ms,
            )
        )
    if ours:
        p95 = ours["overlay_ms"]["p95"]
        out.append(
            _verdict(
                "overlay latency p95 (capture -> overlay at mentor), 1 session",
                f"<= {cfg.overlay_p95_target_ms:.0f} ms",
                f"{p95} ms",
                p95 is not None and p95 <= cfg.overlay_p95_target_ms,
            )
        )
        p95 = ours["ink_ms"]["p95"]
        out.append(
            _verdict(
                "ink latency p95 (mentor -> headset)",
                f"<= {cfg.ink_p95_target_ms:.0f} ms",
                f"{p95} ms (n={ours['ink_ms']['n']})",
                p95 is not None and p95 <= cfg.ink_p95_target_ms,
            )
        )
        for key, label in (("glass_to_glass_ms", "glass-to-glass"), ("overlay_ms", "overlay")):
            d = ours.get("drift", {}).get(key)
            if d:
                out.append(
                    _verdict(
                        f"no build-up: {label} p95, last window / first window",
                        f"<= {1 + cfg.drift_tolerance:.2f}",
                        f"{d['last_over_first']} ({d['first_p95']} -> {d['last_p95']} ms; "
                        f"last / best window {d['last_over_best_window']})",
                        d["met"],
                    )
                )
    ramp = result.get("ramp", {}).get("fieldsight")
    if ramp:
        out.append(
            _verdict(
                "sessions one node holds (overlay p95 <= target, >= min fps)",
                f"report (cap {ramp['cap']})",
                f"{ramp['held_sessions']}",
                None,
            )
        )
    return out


def _f(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}{unit}" if unit != "%" else f"{value * 100:.0f}%"
    return f"{value}{unit}"


def _lag99(figures: dict[str, Any]) -> float | None:
    lag = (figures.get("server_metrics") or {}).get("loop_lag_ms") or {}
    value: float | None = lag.get("p99_ms")
    return value


def _lat(fig: dict[str, Any]) -> str:
    return f"{_f(fig['p50'])}/{_f(fig['p95'])}"


def render(result: dict[str, Any]) -> str:
    lines = []
    m = result["machine"]
    lines.append(
        f"Fieldsight bench ({result['mode']}) on {m['cpu_count']}x {m['cpu_model']}, "
        f"Python {m['python']}, aiortc {m['versions'].get('aiortc')}; "
        f"loadavg at start {m['loadavg_at_start']}"
    )
    lines.append("latencies are p50/p95 in ms; CPU as a share of one core")
    drift = result.get("drift", {})
    for kind in ("fieldsight", "naive"):
        d = drift.get(kind)
        if not d:
            continue
        lines.append("")
        lines.append(
            f"== drift: {kind}, {d['sessions']} session(s), {d['seconds']} s "
            f"(server CPU {_f(d['server_cpu'], '%')}, clients {_f(d['clients_cpu'], '%')}, "
            f"other processes {_f(d['other_cpu'], '%')})"
        )
        lines.append(
            f"{'window s':>10} {'glass':>13} {'overlay':>13} {'ovl@headset':>13} "
            f"{'ink':>11} {'fps':>5} {'ovl/s':>6} {'srv cpu':>8} {'clients':>8} {'other':>6}"
        )
        for w in d["windows"]:
            lines.append(
                f"{w['from_s']:>4.0f}-{w['to_s']:<5.0f} {_lat(w['glass_to_glass_ms']):>13} "
                f"{_lat(w['overlay_ms']):>13} {_lat(w['overlay_at_headset_ms']):>13} "
                f"{_lat(w['ink_ms']):>11} {_f(w.get('delivered_fps')):>5} "
                f"{_f(w.get('overlays_per_s')):>6} {_f(w.get('server_cpu'), '%'):>8} "
                f"{_f(w.get('clients_cpu'), '%'):>8} {_f(w.get('other_cpu'), '%'):>6}"
            )
        lines.append(
            f"{'all':>10} {_lat(d['glass_to_glass_ms']):>13} {_lat(d['overlay_ms']):>13} "
            f"{_lat(d['overlay_at_headset_ms']):>13} {_lat(d['ink_ms']):>11}   "
            f"vision stage {_lat(d['vision_stage_ms'])}, capture->analysed "
            f"{_lat(d['overlay_capture_to_analysed_ms'])}, joins {d['join_to_first_frame_ms']} ms"
        )
        lag = (d.get("server_metrics") or {}).get("loop_lag_ms")
        if lag:
            vision = d["server_metrics"]["vision"]
            lines.append(
                f"   server event loop lag p50/p99/max {_f(lag['p50_ms'])}/{_f(lag['p99_ms'])}/"
                f"{_f(lag['max_ms'])} ms; vision analysed {vision['frames_analysed']} of "
                f"{vision['frames_seen']} frames ({vision['frames_skipped_busy']} skipped busy); "
                f"{d['vision_behind_warnings']} 'vision falls behind' warnings"
            )
        if d["errors"]:
            lines.append(f"   errors: {d['errors'][:3]}")
        if d.get("suspect"):
            lines.append(f"   noise: {'; '.join(d['suspect'])}")
    comparison = drift.get("comparison")
    if comparison:
        lines.append("")
        lines.append("== ours / naive, same load, per window (below 1.00 = ours is faster)")
        lines.append(
            "   each cell: ratio (ours/naive ms); 'other': CPU of other processes on the machine"
        )
        heads = [f"{k} {q}" for k in ("glass", "overlay", "ink") for q in ("p50", "p95")]
        lines.append(f"{'window s':>10} " + " ".join(f"{h:>20}" for h in heads) + f" {'other':>11}")
        for row in comparison:
            cells = []
            for key in ("glass_to_glass_ms", "overlay_ms", "ink_ms"):
                for q in ("p50", "p95"):
                    c = row[f"{key}_{q}"]
                    ratio = "-" if c["ratio"] is None else f"{c['ratio']:.2f}"
                    cells.append(f"{ratio} ({_f(c['ours'])}/{_f(c['naive'])})")
            other = row.get("other_cpu", {})
            lines.append(
                f"{row['from_s']:>4.0f}-{row['to_s']:<5.0f} "
                + " ".join(f"{c:>20}" for c in cells)
                + f" {_f(other.get('ours'), '%'):>5}/{_f(other.get('naive'), '%'):<5}"
            )
    for kind, ramp in result.get("ramp", {}).items():
        lines.append("")
        lines.append(
            f"== ramp: {kind}: held {ramp['held_sessions']} session(s) (cap {ramp['cap']}) with "
            f"the clients on the same machine; server CPU per session up to "
            f"{_f(ramp.get('server_cpu_per_session_max'), '%')} -> CPU-only extrapolation for "
            f"this node: {_f(ramp.get('cpu_only_extrapolation'))} sessions"
        )
        lines.append(
            f"{'n':>3} {'glass':>13} {'overlay':>13} {'ink':>11} {'fps/s':>6} {'ovl/s/s':>7} "
            f"{'srv cpu':>8} {'/sess':>6} {'clients':>8} {'other':>6} {'late95':>7} "
            f"{'lag99':>6}  result"
        )
        for s in ramp["steps"]:
            lines.append(
                f"{s['sessions']:>3} {_lat(s['glass_to_glass_ms']):>13} "
                f"{_lat(s['overlay_ms']):>13} {_lat(s['ink_ms']):>11} "
                f"{_f(s['delivered_fps_per_session']):>6} "
                f"{_f(s['overlays_per_s_per_session']):>7} {_f(s['server_cpu'], '%'):>8} "
                f"{_f(s['server_cpu_per_session'], '%'):>6} {_f(s['clients_cpu'], '%'):>8} "
                f"{_f(s['other_cpu'], '%'):>6} {_f(s['headset_lateness_p95_ms']):>7} "
                f"{_f(_lag99(s)):>6}  "
                f"{s['failure'] or 'ok'}"
                + (f" [noise: {'; '.join(s['suspect'])}]" if s["suspect"] else "")
            )
            for f in s.get("failed_attempts", []):
                lines.append(
                    f"      earlier attempt: {f['failure']}"
                    + (f" [noise: {'; '.join(f['suspect'])}]" if f["suspect"] else "")
                )
    browser = result.get("browser")
    if browser:
        lines.append("")
        if browser.get("skipped"):
            lines.append(f"== Chromium: skipped: {browser['skipped']}")
        else:
            c = browser.get("counters", {})
            lines.append(
                f"== Chromium mentor page: join -> first frame "
                f"{_f(browser.get('join_to_first_frame_ms'))} ms; glass-to-glass (frame callback) "
                f"{_lat(browser['glass_to_glass_ms'])} (n={browser['glass_to_glass_ms']['n']}), "
                f"to last packet {_lat(browser['capture_to_packet_received_ms'])}; "
                f"{_f(browser.get('presented_fps'))} fps; ink page -> headset "
                f"{_lat(browser['ink_ms'])} (n={browser['ink_ms']['n']}); server CPU "
                f"{_f(browser.get('server_cpu'), '%')}"
            )
            lines.append(
                f"   overlays received {c.get('overlaysReceived')}, drawn on "
                f"{c.get('overlaysDrawn')} frames ({c.get('overlaysMatched')} exact pts); "
                f"strokes {c.get('strokesSent')} sent / {c.get('strokesAcked')} acked; "
                f"{browser.get('note', '')}"
            )
            problems = browser.get("page_errors", []) + browser.get("session_errors", [])
            if problems:
                lines.append(f"   errors: {problems[:3]}")
    lines.append("")
    lines.append("== targets")
    for v in result.get("verdicts", []):
        mark = {True: "MET ", False: "MISS", None: "    "}[v["met"]]
        lines.append(f"  [{mark}] {v['what']}: {v['measured']} (target {v['target']})")
    return "\n".join(lines)


def write_json(result: dict[str, Any], out_dir: Path, stamp: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"live-{stamp}.json"
    text = json.dumps(result, indent=2) + "\n"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path
