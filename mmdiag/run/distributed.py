"""Processes of a data-parallel run (``accelerate launch``, ``torchrun`` or ``mmdiag audit --num-processes``).

One code path serves every launcher: when ``WORLD_SIZE`` > 1 the processes join accelerate's
``PartialState`` (gloo on CPU-only machines, which needs ``cpu=True``; NCCL on GPUs), split examples with
``split_between_processes`` and meet at barriers. With one process nothing is initialised.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@dataclass
class ProcessInfo:
    """This process's place in the run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    state: Any = None  # accelerate.PartialState when world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def on_main(self, step: Callable[[], T]) -> T | None:
        """Run ``step`` on the main process only; a one-line error there is raised on every process.

        Without this, a refusal on rank 0 (a locked folder, a refused resume, a full disk) would leave the
        other ranks waiting at the next barrier until the process group times out with tracebacks.
        """
        from mmdiag.errors import MmdiagError

        result, message = None, None
        if self.is_main:
            try:
                result = step()
            except MmdiagError as err:
                message = str(err)
                if self.state is None:
                    raise
        if self.state is not None:
            from accelerate.utils import broadcast_object_list

            message = broadcast_object_list([message], from_process=0)[0]
            if message is not None:
                raise MmdiagError(message)
        return result

    def split(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous share of ``items`` (all of them with one process)."""
        if self.state is None:
            return list(items)
        with self.state.split_between_processes(list(items)) as share:
            return list(share)

    def device(self) -> torch.device | None:
        """The accelerator this process owns in a data-parallel GPU run, else None (CPU / device_map)."""
        if self.world > 1 and torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return None


def current_process() -> ProcessInfo:
    """Join the launcher's process group if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return ProcessInfo()
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return ProcessInfo(
        rank=state.process_index, world=state.num_processes, local_rank=state.local_process_index, state=state
    )


def single_process_launch_note() -> str | None:
    """A note when ``accelerate launch --num_processes N`` (N > 1) started this run as one process.

    Without GPUs, accelerate's launcher runs the script once (it starts several CPU processes only through
    MPI, ``--mpirun_hostfile``); it still sets ``MASTER_ADDR`` for the processes it meant to start, which is
    how this is recognised. The run is correct, only not parallel: the note says so and names the fix.
    """
    env = os.environ
    if "ACCELERATE_USE_CPU" not in env or "MASTER_ADDR" not in env or int(env.get("WORLD_SIZE", "1")) > 1:
        return None
    if any(key in env for key in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")):
        return None
    return (
        "accelerate launch started one process (without GPUs it starts several only through MPI, "
        "--mpirun_hostfile): this run used 1 process; for N CPU processes run mmdiag audit --num-processes N"
    )


def gpu_group(local_rank: int, gpus_per_process: int, memory: str = "auto") -> dict[Any, str] | None:
    """``max_memory`` that confines a process to its own group of GPUs (sharding and data-parallel together).

    Process ``r`` gets GPUs ``r*k .. r*k+k-1``; the others get no memory, so ``device_map="auto"`` places
    nothing there. ``memory`` is the budget per GPU (``"auto"``: the card's total).
    """
    if gpus_per_process <= 0 or not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    group = range(local_rank * gpus_per_process, (local_rank + 1) * gpus_per_process)
    if group.stop > count:
        from mmdiag.errors import ConfigError

        raise ConfigError(
            f"process {local_rank} needs GPUs {group.start}-{group.stop - 1} but only {count} exist: "
            "lower --gpus-per-process or the number of processes"
        )
    budget: dict[Any, str] = {}
    for gpu in range(count):
        if gpu in group:
            total = torch.cuda.get_device_properties(gpu).total_memory
            budget[gpu] = memory if memory != "auto" else f"{int(total * 0.9) // 2**20}MiB"
        else:
            budget[gpu] = "0MiB"
    budget["cpu"] = "1000GiB"
    return budget


STATUS_FILE_ENV = "MMDIAG_STATUS_FILE"  # where rank 0 of a relaunched run leaves its one-line error


def relaunch(num_processes: int, argv: Sequence[str]) -> int:
    """Run ``mmdiag`` again under torchrun with ``num_processes`` processes; returns their exit code.

    A one-line error in the processes comes back through a status file and is printed here once (exit 2).
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mmdiag-launch-") as folder:
        status = os.path.join(folder, "error.txt")
        env = {**os.environ, STATUS_FILE_ENV: status}
        env.setdefault("OMP_NUM_THREADS", "1")  # what torchrun sets anyway, without its warning
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={num_processes}",
            "-m",
            "mmdiag",
            *argv,
        ]
        code = subprocess.call(command, env=env)
        if os.path.isfile(status):
            with open(status, encoding="utf-8") as f:
                print(f"mmdiag: error: {f.read().strip()}", file=sys.stderr)
            return 2
        return code
