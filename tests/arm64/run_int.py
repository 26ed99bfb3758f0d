"""Run zoo models in integer mode over fixed inputs and write what the run produced; executed the same
way natively and under qemu-aarch64, so that tests/test_arm64_qemu.py can compare the two bit for bit.

    python run_int.py JOBS.json OUT_DIR

JOBS.json: [{"model": "zoo:har-lif", "input": "/abs/xs.npy"}, ...]. For each job OUT_DIR gets
``<i>.out.npy`` (the outputs) and one line of OUT_DIR/result.json per job: SHA-256 of the outputs,
of the final state, of the node outputs buffer and of the saturation counters, and the seconds spent
(load, first run with any compiling, second run).
"""

import hashlib
import json
import os
import platform
import sys
import time


def sha(a) -> str:
    import numpy as np

    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()


def main(jobs_path: str, out_dir: str) -> None:
    t0 = time.perf_counter()
    import numpy as np
    from edgebrain.model import Model

    import_s = time.perf_counter() - t0
    with open(jobs_path) as f:
        jobs = json.load(f)
    results = []
    for i, job in enumerate(jobs):
        t = time.perf_counter()
        model = Model.load(job["model"])
        xs = np.load(job["input"], allow_pickle=False)
        sess = model.session(precision="int")
        t_load = time.perf_counter() - t
        t = time.perf_counter()
        out, _ = sess.run(xs)
        t_run = time.perf_counter() - t
        # the final state of that run: what a board would carry into its next chunk
        state = (sha(sess.state), sha(sess.act), sha(sess.saturations), int(sess.clock[0]))
        t = time.perf_counter()
        sess.reset()
        out2, _ = sess.run(xs)  # again from reset: the same outputs, now without compiling
        t_run2 = time.perf_counter() - t
        if isinstance(out, dict):  # several outputs: concatenated in name order
            out = np.concatenate([out[k].reshape(len(xs), -1) for k in sorted(out)], axis=1)
            out2 = np.concatenate([out2[k].reshape(len(xs), -1) for k in sorted(out2)], axis=1)
        np.save(os.path.join(out_dir, f"{i}.out.npy"), out)
        results.append(dict(model=job["model"], steps=int(len(xs)), out=sha(out), rerun_same=bool(np.array_equal(out, out2)),
                            state=state[0], act=state[1], saturations=state[2], clock=state[3],
                            saturated=int(np.asarray(sess.saturations).sum()),
                            load_s=round(t_load, 3), first_run_s=round(t_run, 3), second_run_s=round(t_run2, 4)))
        print(f"run_int: {job['model']}: {len(xs)} steps, first run {t_run:.1f} s", file=sys.stderr, flush=True)
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(dict(machine=platform.machine(), import_s=round(import_s, 3), total_s=round(time.perf_counter() - t0, 3),
                       numba_cpu=os.environ.get("NUMBA_CPU_NAME", ""), jobs=results), f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
