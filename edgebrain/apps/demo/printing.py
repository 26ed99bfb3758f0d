"""What the demos print on a rich console (``--json`` prints their results instead)."""

from __future__ import annotations

from ...energy.units import fmt_j


#: the first line of every synthetic run (``demo motion``, or a zoo demo without its recordings)
SYNTHETIC_BANNER = ("[bold yellow]SYNTHETIC[/]: a generated motion stream and a model trained on generated data "
                    "— not a zoo model, not a real recording")


def print_motion(c, result: dict, source_file: str, calib_sequences: int) -> None:
    """The built-in synthetic example's result (:func:`edgebrain.apps.demo.run_demo`)."""
    acc, agree, lat = result["accuracy"], result["float_int_agreement"], result["step_latency_us_median"]
    c.print(SYNTHETIC_BANNER)
    c.print(f"[bold]edgebrain demo[/]: {source_file} (written by snnTorch's NIR exporter)")
    c.print(f"  detected dialect [cyan]{result['dialect']}[/], dt = {result['dt']:g} s — "
            f"{result['detected_because']}")
    c.print(f"  quantized to int8 weights / int16 state on {calib_sequences} generated sequences "
            f"(setup incl. first-use compile {result['setup_seconds']:.1f} s)")
    c.print(f"  streaming {result['seconds_streamed']} s of generated 3-axis motion at {result['rate_hz']:g} Hz, "
            "one decision per second:")
    for d in result["decisions"]:
        mark = "✓" if d["int"] == d["truth"] else "✗"
        c.print(f"    t={d['t']:5.1f} s  truth {d['truth']:<8} float {str(d['float']):<8} int {str(d['int']):<8} {mark}")
    c.print(f"  accuracy: float {100 * acc['float']:.0f} %, fixed point {100 * acc['int']:.0f} %; "
            f"decisions agreeing {100 * agree:.0f} %")
    c.print(f"  median step latency (Python call included): float {lat['float']:.1f} µs, int {lat['int']:.1f} µs")


def print_zoo_summary(c, result: dict, realtime: bool, stream_s: float, wall_s: float) -> None:
    """The summary after a zoo demo (:func:`edgebrain.apps.demo.run_zoo_demo`): accuracy, latency,
    speed against real time (``stream_s`` of recordings in ``wall_s``, unrounded) and the analytical
    energy per decision."""
    acc, scored = result["accuracy"], result["scored"]
    c.print(f"[bold]summary[/]: accuracy {100 * acc:.1f} % over {scored} scored decisions" if acc is not None
            else "[bold]summary[/]: nothing to score")
    lat, lat_end = result["latency_ms"], result.get("end_of_recording_latency_ms") or {}
    how = "" if realtime else " (files read as fast as possible, a chunk at a time; --realtime paces them sample by sample)"
    if lat["p50"] is not None:
        c.print(f"  latency sample arrival → decision: p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms" + how)
    if lat_end.get("p50") is not None:
        c.print(f"  latency end of recording → its decision: p50 {lat_end['p50']:.3f} ms, p99 {lat_end['p99']:.3f} ms"
                + ("" if lat["p50"] is not None else how))
    c.print(f"  {stream_s:.1f} s of recordings in {wall_s:.2f} s: {result['realtime_factor']}× real time")
    energy = result["energy_per_decision"]
    if energy:
        c.print(f"  energy per decision (analytical, worst case: every input non-zero; {energy['device']} profile): "
                f"{fmt_j(energy['per_decision_j'], smallest='pJ')} over {energy['steps_per_decision']:.1f} steps — "
                "`edgebrain profile` measures it where the device has a meter")
