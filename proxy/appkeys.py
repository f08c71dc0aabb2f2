"""The typed keys under which the gateway's application keeps its config, clients and state."""
from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from cachegate.config import Config
from proxy.accesslog import AccessLog
from proxy.handler import Gateway
from proxy.metrics import Metrics
from proxy.readiness import Readiness
from proxy.revocations import Revocations
from proxy.store import CacheStore
from proxy.workermetrics import WorkerMetrics

CONFIG = web.AppKey("config", Config)  # the config the process started with (its process settings)
METRICS = web.AppKey("metrics", Metrics)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
REDIS = web.AppKey("redis", aioredis.Redis)
SESSION = web.AppKey("session", aiohttp.ClientSession)
STORE = web.AppKey("store", CacheStore)
GATEWAY = web.AppKey("gateway", Gateway)
READINESS = web.AppKey("readiness", Readiness)
DRAINING = web.AppKey("draining", set)  # retired generations whose fetches are still finishing
REVOCATIONS = web.AppKey("revocations", Revocations)
WORKER_METRICS = web.AppKey("worker_metrics", WorkerMetrics)  # a worker's: /-/metrics sums every worker
