"""ecx-emulator: moto server plus an ElastiCache CopySnapshot / S3 export layer."""

__version__ = "0.1.0"
