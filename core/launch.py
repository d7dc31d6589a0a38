"""``ft run RECIPE --nproc-per-node N``: start the ranks without typing torchrun.

The workers are started through ``torch.distributed.run`` (what the
``torchrun`` command runs), each one running ``python -m ft.cli run RECIPE
...`` with the launcher's environment (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``...). One node: a standalone rendezvous on a
free local port. Several nodes: the same command on every node with
``--nnodes M --rdzv-endpoint HOST:PORT`` (c10d rendezvous: ranks are handed
out as nodes join), or with ``--node-rank K`` too for a fixed node order
(static rendezvous, HOST:PORT being node 0's address). Plain ``torchrun``
keeps working exactly as before.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass
class LaunchOptions:
    """The launcher flags of ``ft run``."""

    nproc_per_node: int
    nnodes: int = 1
    node_rank: int | None = None
    rdzv_endpoint: str | None = None
    rdzv_id: str = "ft"
    max_restarts: int = 0

    def torchrun_args(self) -> list[str]:
        """The matching ``torch.distributed.run`` arguments."""
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise ValueError("--nproc-per-node and --nnodes must be at least 1")
        if self.node_rank is not None and not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"--node-rank must be 0..{self.nnodes - 1} (one less than --nnodes)")
        args = ["--nproc-per-node", str(self.nproc_per_node), "--nnodes", str(self.nnodes),
                "--max-restarts", str(self.max_restarts)]
        if self.nnodes == 1 and not self.rdzv_endpoint:
            return [*args, "--standalone"]
        if not self.rdzv_endpoint:
            raise ValueError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the same on every node)")
        if self.node_rank is not None:
            host, _, port = self.rdzv_endpoint.rpartition(":")
            return [*args, "--node-rank", str(self.node_rank), "--master-addr", host, "--master-port", port]
        return [*args, "--rdzv-backend", "c10d", "--rdzv-endpoint", self.rdzv_endpoint, "--rdzv-id", self.rdzv_id]


def launch(options: LaunchOptions, worker_argv: list[str]) -> int:
    """Start ``python -m ft.cli *worker_argv`` on every local rank and wait.
    Returns the exit code: 0, or the first failed worker's (2 for a user error)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    args = get_args_parser().parse_args([*options.torchrun_args(), "--module", "ft.cli", *worker_argv])
    try:
        run(args)
    except ChildFailedError as failure:
        codes = [f.exitcode for f in failure.failures.values()]
        code = next((c for c in codes if c not in (None, 0) and c > 0), 1)
        print(f"ft: {len(codes)} worker(s) failed (exit code {', '.join(str(c) for c in codes)}); their messages "
              f"are above", file=sys.stderr)
        return code
    return 0
