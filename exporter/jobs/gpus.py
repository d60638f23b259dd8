"""The node's GPUs as the job registry needs them: indices, UUIDs, MIG instances, TDP."""

from __future__ import annotations

from dataclasses import dataclass

from joulecast.exporter.devices.base import GpuInfo, MigInstance


@dataclass(frozen=True)
class GpuDirectory:
    """The node's GPUs as the registry needs them: indices, UUIDs, TDP, memory."""

    infos: tuple[GpuInfo, ...]
    lists_processes: bool = True  # False: pid-only jobs cannot be placed, they get every GPU

    def resolve_uuid(self, uuid: str) -> int | None:
        for g in self.infos:
            if g.uuid == uuid or any(m.uuid == uuid for m in g.mig):
                return g.index
        return None

    def indices(self) -> tuple[int, ...]:
        return tuple(g.index for g in self.infos)

    def info(self, index: int) -> GpuInfo | None:
        for g in self.infos:
            if g.index == index:
                return g
        return None

    def mig_instances(self, index: int, uuids: tuple[str, ...]) -> list[MigInstance]:
        """The MIG instances of board ``index`` among ``uuids``."""
        g = self.info(index)
        return [m for m in g.mig if m.uuid in uuids] if g is not None else []

    def mig_share(self, index: int, uuids: tuple[str, ...]) -> float | None:
        """Share of board ``index`` held by the MIG instances among ``uuids``: their memory
        over all its instances' memory (instance count where memory is unknown). ``None``
        when none of ``uuids`` is a MIG instance of that board."""
        mine = self.mig_instances(index, uuids)
        g = self.info(index)
        if not mine or g is None:
            return None
        if all(m.memory_total_bytes for m in g.mig):
            return sum(m.memory_total_bytes or 0 for m in mine) / sum(
                m.memory_total_bytes or 0 for m in g.mig
            )
        return len(mine) / len(g.mig)
