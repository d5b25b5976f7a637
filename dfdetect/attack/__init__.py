"""Attack measurement (paper §4.2): the provider registry and clients, the API results cache and
runner, importers, name normalisation, and scoring (``dfdetect.attack.scoring``)."""

from dfdetect.attack.cache import ApiCache
from dfdetect.attack.errors import AttackDataError
from dfdetect.attack.from_cache import attack_records_from_cache
from dfdetect.attack.names import AliasTable, default_aliases, normalise_name

# importing the providers package registers the built-in providers
from dfdetect.attack.providers import parse_response
from dfdetect.attack.records import ATTACK_COLUMNS, ApiResult
from dfdetect.attack.registry import Provider, get_provider, provider_names, register_provider
from dfdetect.attack.tariq2022 import read_tariq2022

__all__ = [
    "ATTACK_COLUMNS",
    "AliasTable",
    "ApiCache",
    "ApiResult",
    "AttackDataError",
    "Provider",
    "attack_records_from_cache",
    "default_aliases",
    "get_provider",
    "normalise_name",
    "parse_response",
    "provider_names",
    "read_tariq2022",
    "register_provider",
]
