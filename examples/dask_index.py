#!/usr/bin/env python3
"""Build one zsclip embedding index over more images than one machine can encode, on a Dask cluster.

Each of N shards is one task, `zsclip index build --shard K/N`, run by a Dask worker as a subprocess;
a shard that fails is tried again (a worker that dies is replaced and its task rescheduled by Dask,
and the rerun picks up the segments the dead run committed). When every shard is built, the client
merges them with `zsclip index merge`.

  # on this machine, a LocalCluster of 2 worker processes:
  examples/dask_index.py --scheduler local --workers 2 --images-from photos.txt --out photos.idx

  # on a running cluster (dask-scheduler + dask-worker on each machine); zsclip, the model, the
  # images and --work must be reachable at the same paths from every worker (a shared file system):
  examples/dask_index.py --scheduler tcp://10.0.0.5:8786 --shards 64 --images-from /data/photos.txt \\
      --out /data/photos.idx --zsclip /opt/zsclip/bin/zsclip --model /opt/zsclip/share/zsclip/models/shapes

Paths in --images-from that are relative are taken relative to this script's working directory, on
every worker. Needs Debian's python3-distributed (Dask) and nothing else beyond the standard library.
"""
import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def default_zsclip():
    built = os.path.join(HERE, "..", "build", "bin", "zsclip")
    if os.access(built, os.X_OK):
        return os.path.abspath(built)
    return shutil.which("zsclip") or "zsclip"


def _die_with_parent():
    # The zsclip child is killed when the worker process that started it dies.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def build_shard(k, n, zsclip, build_args, shard_dir, cwd, kill_marker=None):
    """Runs on a Dask worker: builds (or resumes) shard k of n. Returns zsclip's summary line.

    kill_marker (tests only): on the first attempt (the marker file does not exist yet), once the
    build has committed a batch, kill it and then this worker process, as a machine that fails
    mid-run would; Dask then reruns the task on a live worker, which resumes the shard.
    """
    cmd = [zsclip, "index", "build", "--shard", f"{k}/{n}", "--out", shard_dir] + build_args
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_die_with_parent)
    if kill_marker is not None and not os.path.exists(kill_marker):
        with open(kill_marker, "w") as f:
            f.write(f"shard {k}: worker {os.getpid()} killed itself mid-run\n")
        pending = os.path.join(shard_dir, "pending")

        def committed():
            return os.path.isdir(pending) and any(e.startswith("seg-") for e in os.listdir(pending))

        deadline = time.time() + 60
        while proc.poll() is None and not committed() and time.time() < deadline:
            time.sleep(0.005)
        proc.kill()
        os.kill(os.getpid(), signal.SIGKILL)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"shard {k}/{n}: {' '.join(cmd)} exited with {proc.returncode}:\n{err.strip()}")
    lines = [l for l in err.splitlines() if l.startswith("zsclip index build: ") and " inputs: " in l]
    return lines[-1] if lines else err.strip()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scheduler", default="local", help="ADDRESS of a Dask scheduler, or 'local' (default) for a LocalCluster")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (default 2)")
    p.add_argument("--shards", type=int, default=0, help="shards (tasks); default: --workers with a LocalCluster, else 4 per worker")
    p.add_argument("--images-from", required=True, help="image paths, one a line")
    p.add_argument("--out", required=True, help="the merged index folder")
    p.add_argument("--work", default="", help="folder for the shard indexes (default: OUT.shards); shared by all workers")
    p.add_argument("--zsclip", default=default_zsclip(), help="the zsclip executable, as the workers see it")
    p.add_argument("--model", default="", help="model directory (default: zsclip's own default)")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="cores each zsclip may use (default: all a worker has)")
    p.add_argument("--retries", type=int, default=2, help="times a failed shard is tried again (default 2)")
    p.add_argument("--test-kill-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    from dask.distributed import Client, LocalCluster, as_completed

    out = os.path.abspath(args.out)
    work = os.path.abspath(args.work or out + ".shards")
    os.makedirs(work, exist_ok=True)
    build_args = ["--images-from", os.path.abspath(args.images_from), "--dtype", args.dtype,
                  "--batch-size", str(args.batch_size)]
    if args.model:
        build_args += ["--model", os.path.abspath(args.model)]
    if args.threads:
        build_args += ["--threads", str(args.threads)]

    cluster = None
    if args.scheduler == "local":
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=40)
        client = Client(cluster)
    else:
        client = Client(args.scheduler)
    try:
        n_workers = max(1, len(client.scheduler_info()["workers"]))
        n = args.shards or (args.workers if cluster else 4 * n_workers)
        kill_marker = os.path.join(work, "killed-worker.txt") if args.test_kill_worker is not None else None
        futures = {}
        for k in range(n):
            shard_dir = os.path.join(work, f"shard-{k:04d}-of-{n:04d}")
            fut = client.submit(build_shard, k, n, args.zsclip, build_args, shard_dir, os.getcwd(),
                                kill_marker if k == args.test_kill_worker else None,
                                key=f"zsclip-index-shard-{k}-of-{n}-{os.getpid()}", retries=args.retries, pure=False)
            futures[fut] = shard_dir
        t0 = time.time()
        for fut in as_completed(futures):
            print(f"[{time.time() - t0:6.1f}s] {fut.result()}", file=sys.stderr)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    shard_dirs = sorted(futures.values())
    # --force: OUT is this script's product, made again from the (resumed) shards on every run.
    subprocess.run([args.zsclip, "index", "merge", "--force", "--out", out] + shard_dirs, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
