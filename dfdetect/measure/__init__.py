"""Attack measurement (paper §4.2): the provider registry and clients, the API results cache and
runner, name normalisation. The paper's scoring of what is measured is ``dfdetect.table2``."""

from dfdetect.measure.cache import ApiCache
from dfdetect.measure.errors import AttackDataError
from dfdetect.measure.names import AliasTable, default_aliases, normalise_name

# importing the providers package registers the built-in providers
from dfdetect.measure.providers import parse_response
from dfdetect.measure.records import ATTACK_COLUMNS, ApiResult
from dfdetect.measure.registry import Provider, get_provider, provider_names, register_provider

__all__ = [
    "ATTACK_COLUMNS",
    "AliasTable",
    "ApiCache",
    "ApiResult",
    "AttackDataError",
    "Provider",
    "default_aliases",
    "get_provider",
    "normalise_name",
    "parse_response",
    "provider_names",
    "register_provider",
]
