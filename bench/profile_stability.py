#!/usr/bin/env python3
"""Checks `strata profile` against its targets (issue 3) in one command.

Runs, in turn, N times: a full `strata profile --model`, a quick `strata profile`, the plain
STREAM-style triad (bench_stream_triad, same array size and threads, pinned), and
`strata generate` on the same model; then prints one table: the spread across runs (CoV) of
the memory and GEMV figures, the profile's triad over STREAM's, the decode prediction over
the measured decode, and the wall time of each profile. Interleaving puts every measurement
under the same background load, so the ratios stay meaningful on a busy machine.

  bench/profile_stability.py [--build build/release] [--model FILE.gguf] [--runs 3] [--nice -20]

--nice N runs every measured command under `nice -n N` (negative N needs root): on a machine
shared with builds it keeps the other processes' share of the CPU small for profile, STREAM
and generate alike.

Targets (issue 3): CoV <= 5 %, triad within 10 % of STREAM, prediction within 15 % of
generate, --quick <= 10 s, full <= 90 s. Exit status 0 whatever the figures (it reports, it
does not judge a machine's load); 2 for bad arguments, 1 when a command fails.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROMPT_LEN = 128
N_DECODE = 64
# generate decodes positions PROMPT_LEN .. PROMPT_LEN + N_DECODE - 1: this is their mean.
CTX = PROMPT_LEN + N_DECODE // 2


def run(cmd, what):
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"profile_stability: {what} failed ({' '.join(cmd)}), exit {p.returncode}:\n"
                 f"{p.stderr[-2000:]}")
    return p.stdout, wall


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def fig(f):
    """(value, p10, p90) of a profile figure, None where unavailable."""
    if not f or f.get("value") is None:
        return None
    s = f.get("stats") or {}
    return f["value"], s.get("p10", f["value"]), s.get("p90", f["value"])


def cov_pct(xs):
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return None
    return 100.0 * statistics.stdev(xs) / statistics.mean(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", help="build folder with bin/strata and bench/bench_stream_triad "
                    "(default build/release if built, else build/dev)")
    ap.add_argument("--model", default="build/bench-models/llama1.1b-q4_0.gguf",
                    help="GGUF model for the prediction and generate (default %(default)s)")
    ap.add_argument("--runs", type=int, default=3, help="rounds (default %(default)s, >= 2)")
    ap.add_argument("--stream-iterations", type=int, default=30)
    ap.add_argument("--nice", type=int, help="run the measured commands under nice -n N")
    a = ap.parse_args()
    if a.runs < 2:
        ap.error("--runs must be at least 2 (a CoV needs two runs)")
    build = a.build
    if build is None:
        build = next((b for b in ("build/release", "build/dev")
                      if os.path.exists(os.path.join(b, "bin", "strata"))), "build/dev")
    strata = os.path.join(build, "bin", "strata")
    stream = os.path.join(build, "bench", "bench_stream_triad")
    for path, what in ((strata, "strata"), (stream, "bench_stream_triad"), (a.model, "model")):
        if not os.path.exists(path):
            ap.error(f"{what} not found at {path} (build it, or pass --build / --model)")

    pre = ["nice", "-n", str(a.nice)] if a.nice is not None else []
    rows = []
    with tempfile.TemporaryDirectory(prefix="strata-stability-") as tmp:
        for i in range(1, a.runs + 1):
            r = {"run": i, "load": loadavg()}
            print(f"run {i}/{a.runs}: full profile (load {r['load']:.1f})", file=sys.stderr)
            out, r["full_s"] = run(pre + [strata, "profile", "--json", "--model", a.model, "--ctx",
                                    str(CTX), "--storage-path", tmp], "full profile")
            p = json.loads(out)
            mem, comp = p["memory"], p["compute"]
            r["read"] = fig(mem["read_gb_per_s"]["threads_all"])
            r["triad"] = fig(mem["triad_gb_per_s"]["threads_all"])
            dtype = (p.get("derived") or {}).get("dtype", "q4_0")
            r["gemv"] = fig(comp["gemv_gflops"].get(dtype, {}).get("threads_all"))
            r["dtype"] = dtype
            r["pred"] = fig((p.get("derived") or {}).get("decode_tok_per_s"))
            threads = comp["threads_all"]
            mib = max(1, mem["array_bytes"] // (1 << 20))

            print(f"run {i}/{a.runs}: STREAM triad, {mib} MiB x {threads} threads",
                  file=sys.stderr)
            out, _ = run(pre + [stream, str(mib), str(threads), str(a.stream_iterations), "pin"],
                         "bench_stream_triad")
            st = {ln.split()[0]: float(ln.split()[1]) for ln in out.splitlines()
                  if ln.split() and ln.split()[0] in ("best", "p90", "median")}
            r["stream_best"], r["stream_p90"] = st["best"], st["p90"]

            print(f"run {i}/{a.runs}: generate", file=sys.stderr)
            out, _ = run(pre + [strata, "generate", "--model", a.model, "--prompt-len",
                          str(PROMPT_LEN), "-n", str(N_DECODE), "--threads", str(threads),
                          "--json"], "generate")
            r["decode"] = json.loads(out)["decode_tps"]

            print(f"run {i}/{a.runs}: quick profile", file=sys.stderr)
            _, r["quick_s"] = run(pre + [strata, "profile", "--quick", "--json", "--storage-path",
                                   tmp], "quick profile")
            rows.append(r)

    def v(x):
        return x[0] if x else None

    def spread(x):
        return f"{x[0]:6.2f} ({x[1]:.2f}-{x[2]:.2f})" if x else "   n/a"

    print(f"\nstrata profile stability: {a.runs} rounds of full profile, STREAM, generate "
          f"(prompt {PROMPT_LEN}, {N_DECODE} tokens, prediction at ctx {CTX}), quick profile")
    print(f"build {build}, model {a.model}"
          f"{'' if a.nice is None else f', under nice -n {a.nice}'}; "
          "figures are value (p10-p90); GB/s, GFLOP/s, tok/s\n")
    gemv_head = f"{rows[0]['dtype']} gemv all"
    print(f"{'run':>3} {'load':>5} {'full s':>6} {'quick s':>7}  {'read all':<20} "
          f"{'triad all':<20} {'STREAM best/p90':<15} {'triad/STREAM':>12}  {gemv_head:<20} "
          f"{'predicted':>9} {'generate':>8} {'error':>7}")
    for r in rows:
        ratio = v(r["triad"]) / r["stream_best"] if r["triad"] else None
        err = (v(r["pred"]) / r["decode"] - 1) * 100 if r["pred"] else None
        r["ratio"], r["err"] = ratio, err
        ratio_s = f"{ratio:.3f}" if ratio else "n/a"
        pred_s = f"{v(r['pred']):.2f}" if r["pred"] else "n/a"
        err_s = f"{err:+.1f}%" if err is not None else "n/a"
        stream_s = f"{r['stream_best']:.2f}/{r['stream_p90']:.2f}"
        print(f"{r['run']:>3} {r['load']:>5.1f} {r['full_s']:>6.1f} {r['quick_s']:>7.1f}  "
              f"{spread(r['read']):<20} {spread(r['triad']):<20} {stream_s:<15} "
              f"{ratio_s:>12}  {spread(r['gemv']):<20} {pred_s:>9} {r['decode']:>8.2f} "
              f"{err_s:>7}")

    def check(name, value, target, ok):
        shown = "n/a" if value is None else value
        verdict = "n/a" if value is None else ("ok" if ok else "MISSED")
        print(f"  {name:<44} {shown:<24} target {target:<12} {verdict}")

    print("\ntargets")
    for key, name in (("read", "CoV of read GB/s (all threads)"),
                      ("triad", "CoV of triad GB/s (all threads)"),
                      ("gemv", f"CoV of {rows[0]['dtype']} GEMV GFLOP/s (all threads)")):
        c = cov_pct([v(r[key]) for r in rows])
        check(name, None if c is None else f"{c:.1f}%", "<= 5%", c is not None and c <= 5)
    c = cov_pct([v(r["pred"]) for r in rows])
    check("CoV of the decode prediction", None if c is None else f"{c:.1f}%", "(info)", True)
    c = cov_pct([r["decode"] for r in rows])
    check("CoV of generate's decode tok/s", None if c is None else f"{c:.1f}%", "(info)", True)
    ratios = [r["ratio"] for r in rows if r["ratio"]]
    if ratios:
        check("triad / STREAM best, each run", " ".join(f"{x:.3f}" for x in ratios),
              "0.90-1.10", all(0.9 <= x <= 1.1 for x in ratios))
    errs = [r["err"] for r in rows if r["err"] is not None]
    if errs:
        check("prediction vs generate, each run", " ".join(f"{x:+.1f}%" for x in errs),
              "within 15%", all(abs(x) <= 15 for x in errs))
    check("--quick wall time, slowest run", f"{max(r['quick_s'] for r in rows):.1f} s",
          "<= 10 s", max(r["quick_s"] for r in rows) <= 10)
    check("full wall time, slowest run", f"{max(r['full_s'] for r in rows):.1f} s", "<= 90 s",
          max(r["full_s"] for r in rows) <= 90)
    print("\nload = 1-minute load average when the round began (2 cores: above 2 means other "
          "processes were runnable).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
