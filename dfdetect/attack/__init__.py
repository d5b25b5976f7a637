"""Attack measurement: API results cache, importers, name normalisation (paper §4.2)."""

from dfdetect.attack.cache import ApiCache
from dfdetect.attack.from_cache import attack_records_from_cache
from dfdetect.attack.names import AliasTable, default_aliases, normalise_name
from dfdetect.attack.providers import parse_response
from dfdetect.attack.records import ATTACK_COLUMNS, PROVIDERS, ApiResult, AttackDataError
from dfdetect.attack.tariq2022 import read_tariq2022

__all__ = [
    "ATTACK_COLUMNS",
    "PROVIDERS",
    "AliasTable",
    "ApiCache",
    "ApiResult",
    "AttackDataError",
    "attack_records_from_cache",
    "default_aliases",
    "normalise_name",
    "parse_response",
    "read_tariq2022",
]
