"""``edgebrain profile``'s human-readable report of a :func:`edgebrain.apps.profile.profile` result."""

from __future__ import annotations

from ...energy.units import fmt_j, fmt_s


def format_report(r: dict) -> str:
    """The human-readable report."""
    m, e, w, met = r["measured"], r["estimate"], r["workload"], r["metrics"]
    spi = w["steps_per_inference"]
    L = [(f"profile of {r['model']} ({r['precision']} precision), estimate for {r['device']['name']} "
          f"({r['device']['title']}), meter {r['meter']['name']}")]
    src = w.get("input") or w.get("source")
    L.append(f"workload: {src}; {w['definition']}")
    L.append(f"run: {m['inferences']} inferences in {m['duration_s']:.2f} s ({m['calls']} calls)"
             + (f"; on this machine {fmt_s(r['host_timing']['seconds_per_inference'])} per inference, "
                f"{fmt_s(r['host_timing']['seconds_per_step'])} per step" if r["host_timing"] else ""))
    L.append("")
    L.append("measured")
    if not m["measured"]:
        L.append("  no sensor (meter model): no measured energy; see the analytical estimate")
    else:
        mt = r["meter"]
        L.append(f"  meter {mt['name']} {mt.get('target') or ''} ({mt.get('scope')}), {m['samples']} samples in the run, "
                 f"{m['baseline_samples']} in the {m['baseline_duration_s']:.1f} s idle baseline".replace("  (", " ("))
        if m["energy_per_inference_j"] is None:
            L.append("  no complete inference was measured")
        else:
            L.append(f"  energy per inference  {fmt_j(m['energy_per_inference_j'])} ± "
                     f"{fmt_j(m['energy_per_inference_uncertainty_j'])} (mean power {m['mean_power_w']:.4g} W; "
                     f"per step {fmt_j(r['per_step_measured']['energy_j'])})")
            if m["dynamic_per_inference_j"] is not None:
                L.append(f"  above idle            {fmt_j(m['dynamic_per_inference_j'])} ± "
                         f"{fmt_j(m['dynamic_per_inference_uncertainty_j'])} (idle {m['baseline_power_w']:.4g} W "
                         f"± {m['baseline_power_std_w'] if m['baseline_power_std_w'] > 1e-12 else 0:.2g} W; per step {fmt_j(r['per_step_measured']['dynamic_j'])})")
            u = m.get("uncertainty") or {}
            L.append("  uncertainty (1 σ, over the run): " + ", ".join(
                f"{k.replace('_j', '')} {fmt_j(v)}" for k, v in u.items() if v is not None))
        if r["partial"]:
            L.append(f"  PARTIAL: {m['partial_reason']}")
        if r["too_short"]:
            L.append(f"  TOO SHORT: {m['too_short_reason']}")
        for n in m.get("notes", []):
            L.append(f"  note: {n}")
    L.append("")
    L.append(f"analytical estimate ({e['device']}, {e['precision']})")
    b = e["breakdown_per_inference_j"]
    L.append(f"  energy per inference  {fmt_j(e['per_inference_j'])} (synaptic MAC {fmt_j(b['synaptic_mac_j'])}, "
             f"AC {fmt_j(b['synaptic_ac_j'])}, membrane {fmt_j(b['membrane_j'])}, weight memory "
             f"{fmt_j(b['weight_memory_j'])}, state memory {fmt_j(b['state_memory_j'])}); per step "
             f"{fmt_j(e['per_step_j'])}")
    L.append(f"  latency per step ≈ {fmt_s(e['latency_per_step_s'])}; device at active power "
             f"{e['active_power_w']:g} W for that long: {fmt_j(e['device_per_inference_j'])} per inference")
    if r["comparison"]:
        c = r["comparison"]
        L.append(f"  measured above idle / estimate = {c['measured_dynamic_over_estimate']:.3g}×"
                 + (f"; measured total / device-level estimate = {c['measured_total_over_device_estimate']:.3g}×"
                    if c.get("measured_total_over_device_estimate") else ""))
    L.append("")
    L.extend(_interpreted_metrics(met, spi) if r.get("kind") == "interpreted" else _spiking_metrics(met, spi))
    L.append("")
    L.append("assumptions (analytical estimate)")
    L.extend(f"  - {a}" for a in e["assumptions"])
    if r.get("plot"):
        p = r["plot"]
        what = (f", the estimate per {p['per']} over time: no sensor)" if p.get("per") else
                ", estimated power: no sensor)" if p["estimate"] else ")")
        L.append(f"\nwrote {p['path']} ({p['width']}×{p['height']} px{what}")
    return "\n".join(L)


def _footprint(fp: dict) -> str:
    return (f"  footprint             {fp['total_bytes']} B ({fp['param_bytes']} B parameters + {fp['state_bytes']} B "
            f"state{', estimated' if fp.get('estimated') else ''}); NeuroBench float model {fp['neurobench_bytes']} B")


def _interpreted_metrics(met: dict, spi: float) -> list[str]:
    """A TFLite or ONNX model's: what its file says it computes."""
    return [f"metrics (counted from the file; {met['runtime']}, {met['threads']} thread"
            f"{'s' if met['threads'] != 1 else ''})",
            _footprint(met["footprint"]),
            f"  parameters            {met['parameter_count']}",
            f"  MACs                  {met['macs_per_call']} per call, {met['macs_per_inference']:.6g} per inference "
            f"({spi:.4g} call{'s' if spi != 1 else ''}); every one executed, zeros included"]


def _spiking_metrics(met: dict, spi: float) -> list[str]:
    L = []
    fp = met["footprint"]
    so = met["synaptic_operations"]
    pi = met["per_inference"]
    L.append(f"metrics (NeuroBench definitions, {met['precision']}; on {met['steps']} steps × {met['samples']} sample(s))")
    L.append(_footprint(fp))
    L.append(f"  connection sparsity   {met['connection_sparsity']:.4f}")
    L.append(f"  activation sparsity   {met['activation_sparsity']:.4f}")
    L.append(f"  synaptic operations   per sample over the steps: eff MACs {so.get('Effective_MACs', 0):.6g}, "
             f"eff ACs {so.get('Effective_ACs', 0):.6g}, dense {so.get('Dense', 0):.6g}")
    L.append(f"                        per inference ({spi:.4g} steps): eff MACs {pi.get('Effective_MACs', 0):.6g}, "
             f"eff ACs {pi.get('Effective_ACs', 0):.6g}, dense {pi.get('Dense', 0):.6g}")
    L.append(f"  membrane updates      {met['membrane_updates']:.6g} per sample ({pi['membrane_updates']:.6g} per inference)")
    return L


def measurement_warnings(r: dict) -> list[str]:
    """What the caller should be warned of: a partial measurement, or one too short to trust."""
    return [f"the measurement is {flag.replace('_', ' ')}: {r['measured'][flag + '_reason']}"
            for flag in ("partial", "too_short") if r[flag]]
