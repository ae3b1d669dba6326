"""The offline judge (registered as `offline`): see `judges.offline.judge`."""

from judges.offline.judge import OfflineConfig, OfflineJudge

__all__ = ["OfflineConfig", "OfflineJudge"]
