"""The celebrity-recognition providers, one module each holding its client, its response parser
and its registry record (``dfdetect.measure.registry``): AWS Rekognition, Microsoft Azure and Naver
CFR. Importing this package registers them. Shared by every client: ``base`` (one attempt of one
call, credentials, ``parse_response``) and ``http`` (one request with ``requests``)."""

from dfdetect.measure.providers import aws, azure, naver
from dfdetect.measure.providers.base import parse_response

__all__ = ["aws", "azure", "naver", "parse_response"]
