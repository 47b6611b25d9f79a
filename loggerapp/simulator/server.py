"""The simulator's HTTP server: one aiohttp application speaking the three EAGLE protocols, plus /_sim control.

Decisions:
1. One event loop owns all state. Handlers, control endpoints and the ``run_simulator`` handle (which hops onto
   the loop with ``call_soon_threadsafe``) are the only writers, so there are no locks on the hot path.
2. The request body is scanned with a few regular expressions instead of an XML parser. The simulator only
   needs the command name, the format, a hardware address and variable names; a regex cannot expand entities,
   and it keeps a request at a few dozen microseconds so that one core serves thousands a second.
3. A household is identified as the real gateways do it: the HTTP Basic user (EAGLE-100/200, password =
   install code) or the ``Cloud-ID`` header (cloud relay, with ``User`` and ``Password``). Basic auth naming a
   local gateway wins: Rainforest's own client sends the relay headers *and* Basic auth to a local EAGLE-100,
   which answers on Basic auth. A household answers only in its own protocol: the relay does not know a local
   gateway (unknown cloud id) and a local gateway refuses relay headers alone (401).
4. Every request that names a known household is counted before anything else, including refused ones, so
   tests can see that a client backed off.
5. The /_sim control endpoints answer only peers on loopback; the command also refuses to bind elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import random
import re
import socket
import struct
import time
from collections import Counter
from collections.abc import Iterable

from aiohttp import web

from loggerapp.simulator import answers
from loggerapp.simulator.faults import Fault
from loggerapp.simulator.households import QUIRKS, SimHousehold
from loggerapp.simulator.meter import ZIGBEE_EPOCH, Profile, Totals, derive_profile, reading_at

logger = logging.getLogger(__name__)

POST_MANAGER = "/cgi-bin/post_manager"
MAX_BODY = 64 * 1024

_NAME = re.compile(rb"<Name>\s*([^<]*?)\s*</Name>", re.IGNORECASE)
_FORMAT = re.compile(rb"<Format>\s*([^<]*?)\s*</Format>", re.IGNORECASE)
_HARDWARE = re.compile(rb"<HardwareAddress>\s*([^<]*?)\s*</HardwareAddress>", re.IGNORECASE)
_VARIABLE = re.compile(rb"<Variable>\s*<Name>\s*([^<]*?)\s*</Name>", re.IGNORECASE)

_LEGACY_COMMANDS = {
    "get_instantaneous_demand",
    "get_price",
    "get_current_summation",
    "get_network_info",
    "get_network_status",
    "get_history_data",
    "get_schedule",
}
_START_TIME = re.compile(rb"<StartTime>\s*([^<]*?)\s*</StartTime>", re.IGNORECASE)
_END_TIME = re.compile(rb"<EndTime>\s*([^<]*?)\s*</EndTime>", re.IGNORECASE)
_FREQUENCY = re.compile(rb"<Frequency>\s*([^<]*?)\s*</Frequency>", re.IGNORECASE)
_EVENT = re.compile(rb"<Event>\s*([^<]*?)\s*</Event>", re.IGNORECASE)
MAX_HISTORY_ENTRIES = 96
SESSION_COOKIE = "eagle_session"
_STREAM_CHUNK = 65536
_EAGLE200_COMMANDS = {"device_list", "device_query"}
_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="Rainforest EAGLE"'}
_GARBAGE = b"\x00\x17\xffRainforest gw: ??? {{{ ]]> unexpected condition \xfe\xfd"


class ControlError(ValueError):
    """A control request that cannot be applied (unknown household, bad fault); the message is safe to show."""


def _hex_int(text: str) -> int | None:
    try:
        return int(text, 16)
    except ValueError:
        return None


class Simulator:
    """Households, their faults and counters, and the aiohttp application that serves them."""

    def __init__(
        self,
        households: Iterable[SimHousehold] = (),
        *,
        seed: int | str = 1,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        fault_rates: dict[str, float] | None = None,
        reading_interval_s: int = 10,
    ) -> None:
        self.seed = seed
        self.latency_ms = float(latency_ms)
        self.jitter_ms = float(jitter_ms)
        self.reading_interval = max(1, int(reading_interval_s))
        self._rng = random.Random(f"requests:{seed}")
        self._households: dict[str, SimHousehold] = {}
        self._profiles: dict[str, Profile] = {}
        self._totals: dict[str, Totals] = {}
        self._faults: dict[str, Fault] = {}
        self._rates: list[tuple[float, Fault]] = []
        self.counts: Counter[str] = Counter()
        self.cookies_seen: Counter[str] = Counter()  # requests of a household that carried a Cookie header
        self.statuses: Counter[int] = Counter()
        self.injected: Counter[str] = Counter()
        self.total_requests = 0
        self.unknown_requests = 0
        self.started = time.time()
        for fault, rate in (fault_rates or {}).items():
            self.set_fault_rate(fault, rate)
        for household in households:
            self.add(household)

    # --- state (call on the loop thread, or before the server starts) ------------------------------------

    def add(self, household: SimHousehold) -> SimHousehold:
        cloud_id = household.cloud_id
        profile = derive_profile(
            self.seed,
            cloud_id,
            exports=household.exports,
            solar=household.solar,
            reading_interval=self.reading_interval,
        )
        if self._profiles.get(cloud_id) != profile or cloud_id not in self._totals:
            self._totals[cloud_id] = Totals(profile, time.time())
        self._profiles[cloud_id] = profile
        self._households[cloud_id] = household
        return household

    def add_household(
        self,
        cloud_id: str,
        protocol: str = "cloud",
        user_email: str = "",
        password: str = "",
        exports: bool = False,
        **quirks: object,
    ) -> SimHousehold:
        unknown = set(quirks) - QUIRKS
        if unknown:
            raise ControlError(f"unknown household option(s): {', '.join(sorted(unknown))}")
        try:
            household = SimHousehold(
                cloud_id,
                protocol=protocol,
                user_email=user_email,
                password=password,
                exports=exports,
                **quirks,  # type: ignore[arg-type]
            )
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from None
        return self.add(household)

    def remove_household(self, cloud_id: str) -> bool:
        cloud_id = cloud_id.lower()
        self._faults.pop(cloud_id, None)
        self._profiles.pop(cloud_id, None)
        self._totals.pop(cloud_id, None)
        return self._households.pop(cloud_id, None) is not None

    def sync(self, households: Iterable[SimHousehold], origin: str) -> tuple[int, int]:
        """Make the households of one origin (e.g. "db") equal to ``households``; returns (added, removed)."""
        wanted = {household.cloud_id: household for household in households}
        removed = [
            cloud_id
            for cloud_id, household in self._households.items()
            if household.origin == origin and cloud_id not in wanted
        ]
        for cloud_id in removed:
            self.remove_household(cloud_id)
        added = sum(1 for cloud_id in wanted if cloud_id not in self._households)
        for household in wanted.values():
            if self._households.get(household.cloud_id) != household:
                self.add(household)
        return added, len(removed)

    def household(self, cloud_id: str) -> SimHousehold:
        try:
            return self._households[cloud_id.lower()]
        except KeyError:
            raise ControlError(f"no simulated household {cloud_id[:12]!r}") from None

    def households(self) -> list[SimHousehold]:
        return list(self._households.values())

    def set_fault(self, cloud_id: str, fault: str, **params: object) -> None:
        household = self.household(cloud_id)
        try:
            self._faults[household.cloud_id] = Fault.make(fault, **params)
        except ValueError as exc:
            raise ControlError(str(exc)) from None

    def clear_fault(self, cloud_id: str) -> None:
        self._faults.pop(cloud_id.lower(), None)

    def clear_faults(self) -> None:
        """Heal everything: per-household faults and fault rates."""
        self._faults.clear()
        self._rates.clear()

    def set_fault_rate(self, fault: str, rate: float, **params: object) -> None:
        """Each request of any household gets ``fault`` with probability ``rate`` (0 removes it)."""
        try:
            made = Fault.make(fault, **params)
            rate = float(rate)
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from None
        if not 0 <= rate <= 1:
            raise ControlError("a rate is between 0 and 1")
        rates = [(r, f) for r, f in self._rates if f.name != fault]
        if rate > 0:
            rates.append((rate, made))
        if sum(r for r, _ in rates) > 1 + 1e-9:
            raise ControlError("fault rates add up to more than 1")
        self._rates = rates

    def requests(self, cloud_id: str) -> int:
        return self.counts.get(cloud_id.lower(), 0)

    def cookie_requests(self, cloud_id: str) -> int:
        """How many of the household's requests carried a Cookie header (a client should send none)."""
        return self.cookies_seen.get(cloud_id.lower(), 0)

    def demand_kw(self, cloud_id: str, now: float | None = None) -> float:
        """The kW the household answers at ``now`` (default: now), as a correct client decodes it."""
        household = self.household(cloud_id)
        reading = reading_at(self._profiles[household.cloud_id], now or time.time(), self.reading_interval)
        return answers.wire_demand_kw(household, reading.demand_kw)

    def stats(self) -> dict[str, object]:
        protocols = Counter(h.protocol for h in self._households.values())
        return {
            "households": len(self._households),
            "protocols": dict(protocols),
            "requests": self.total_requests,
            "requests_with_cookies": sum(self.cookies_seen.values()),
            "unknown_requests": self.unknown_requests,
            "statuses": {str(status): count for status, count in sorted(self.statuses.items())},
            "injected": dict(self.injected),
            "faults": {cloud_id: fault.to_dict() for cloud_id, fault in sorted(self._faults.items())},
            "rates": {fault.name: rate for rate, fault in self._rates},
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "reading_interval_s": self.reading_interval,
            "uptime_s": round(time.time() - self.started, 3),
        }

    # --- the application --------------------------------------------------------------------------------

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(POST_MANAGER, self.post_manager)
        app.router.add_get("/_sim/stats", self._control(self.http_stats))
        app.router.add_post("/_sim/faults", self._control(self.http_set_fault))
        app.router.add_delete("/_sim/faults", self._control(self.http_clear_faults))
        app.router.add_delete("/_sim/faults/{cloud_id}", self._control(self.http_clear_fault))
        app.router.add_post("/_sim/households", self._control(self.http_add_household))
        app.router.add_get("/_sim/households/{cloud_id}", self._control(self.http_household))
        app.router.add_delete("/_sim/households/{cloud_id}", self._control(self.http_remove_household))
        return app

    def _fault_for(self, cloud_id: str) -> Fault | None:
        fault = self._faults.get(cloud_id)
        if fault is not None or not self._rates:
            return fault
        draw = self._rng.random()
        for rate, candidate in self._rates:
            if draw < rate:
                return candidate
            draw -= rate
        return None

    async def _latency(self) -> None:
        if self.latency_ms or self.jitter_ms:
            delay = self.latency_ms + (self._rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0)
            if delay > 0:
                await asyncio.sleep(delay / 1000.0)

    def _respond(self, status: int, body: str | bytes, content_type: str, headers: dict | None = None) -> web.Response:
        self.statuses[status] += 1
        response = web.Response(status=status, body=body.encode() if isinstance(body, str) else body, headers=headers)
        response.content_type = content_type.split(";")[0]
        if "charset" in content_type:
            response.charset = "utf-8"
        return response

    async def post_manager(self, request: web.Request) -> web.StreamResponse:
        """POST /cgi-bin/post_manager for every protocol."""
        self.total_requests += 1
        body = await request.read()
        headers = request.headers
        user, password = _basic_auth(headers.get("Authorization", ""))
        local = self._households.get(user) if user else None
        if local is not None and local.protocol != "cloud":
            return await self._local(request, body, local, password)
        header_id = headers.get("Cloud-ID")
        if header_id is not None:
            return await self._cloud(request, header_id.strip().lower(), body)
        return await self._local(request, body, None, password)

    async def _cloud(self, request: web.Request, cloud_id: str, body: bytes) -> web.StreamResponse:
        household = self._households.get(cloud_id)
        want_json = _wants_json(body)
        if household is None or household.protocol != "cloud":
            self.unknown_requests += 1
            await self._latency()
            return self._respond(200, *answers.legacy_error(answers.ERROR_TEXTS["unknown_cloud_id"], want_json))
        self._count(request, cloud_id)
        fault = self._fault_for(cloud_id)
        user = request.headers.get("User", "")
        password = request.headers.get("Password", "")
        good = (
            user.strip().lower() == household.user_email.lower()
            and hmac.compare_digest(password.encode(), household.password.encode())
            and (fault is None or fault.name != "bad_credentials")
        )
        await self._latency()
        if not good:
            if fault is not None:
                self.injected[fault.name] += 1
            return self._respond(200, *answers.legacy_error(answers.ERROR_TEXTS["bad_credentials"], want_json))
        return await self._answer(request, household, body, fault)

    def _count(self, request: web.Request, cloud_id: str) -> None:
        self.counts[cloud_id] += 1
        if "Cookie" in request.headers:
            self.cookies_seen[cloud_id] += 1

    async def _local(
        self, request: web.Request, body: bytes, household: SimHousehold | None, password: str
    ) -> web.StreamResponse:
        if household is None or household.protocol == "cloud":
            self.unknown_requests += 1
            await self._latency()
            return self._respond(401, "Unauthorized", "text/plain", _UNAUTHORIZED_HEADERS)
        self._count(request, household.cloud_id)
        fault = self._fault_for(household.cloud_id)
        await self._latency()
        if not hmac.compare_digest(password.encode(), household.password.encode()) or (
            fault is not None and fault.name == "bad_credentials"
        ):
            if fault is not None:
                self.injected[fault.name] += 1
            return self._respond(401, "Unauthorized", "text/plain", _UNAUTHORIZED_HEADERS)
        return await self._answer(request, household, body, fault)

    async def _answer(
        self, request: web.Request, household: SimHousehold, body: bytes, fault: Fault | None
    ) -> web.StreamResponse:
        if fault is not None:
            self.injected[fault.name] += 1
            name = fault.name
            if fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000.0)
            if name == "reset":
                return _reset(request)
            if name == "http_500":
                return self._respond(500, "Internal Server Error", "text/plain")
            if name == "http_503":
                return self._respond(503, "Timeout waiting for response", "text/plain")
            if name == "empty":
                return self._respond(200, b"", "text/xml")
            if name == "garbage":
                return self._respond(200, _GARBAGE, "text/plain")
            if name == "huge":
                return await self._stream(request, answers.huge_chunks(int(fault.param("size"))), "text/xml")
            if name == "gzip_bomb":
                response = self._respond(200, answers.gzip_bomb(int(fault.param("size"))), "text/xml")
                response.headers["Content-Encoding"] = "gzip"
                return response
            if name == "deep_json":
                return self._respond(200, answers.deep_json(int(fault.param("depth"))), answers.JSON)
            if name == "error":
                text = answers.ERROR_TEXTS["error_cloud" if household.protocol == "cloud" else "error_local"]
                return self._respond(200, *answers.legacy_error(text, _wants_json(body)))
        joined = fault is None or fault.name != "meter_not_joined"
        text, content_type = self._document(household, body, joined)
        if fault is not None and fault.name == "truncated":
            text = text[: len(text) // 2]
        if fault is not None and fault.name == "trickle":
            return await self._trickle(request, text.encode(), content_type, fault.param("interval_ms") / 1000.0)
        response = self._respond(200, text, content_type)
        if household.set_cookie:
            response.set_cookie(SESSION_COOKIE, f"{self._rng.getrandbits(64):016x}", path="/", httponly=True)
        return response

    async def _stream(self, request: web.Request, chunks: Iterable[bytes], content_type: str) -> web.StreamResponse:
        """A 200 answer written chunk by chunk without a Content-Length (chunked), until done or the client
        leaves; memory stays at one chunk whatever the size."""
        self.statuses[200] += 1
        response = web.StreamResponse(status=200)
        response.content_type = content_type
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionError, RuntimeError):  # the client stopped reading and closed: that is the point
            pass
        return response

    async def _trickle(
        self, request: web.Request, data: bytes, content_type: str, interval: float
    ) -> web.StreamResponse:
        """The whole answer announced (Content-Length), then sent one byte every ``interval`` seconds: each
        byte restarts a per-read timeout, so only an overall deadline ends the exchange."""
        self.statuses[200] += 1
        response = web.StreamResponse(status=200)
        response.content_type = content_type.split(";")[0]
        response.content_length = len(data)
        try:
            await response.prepare(request)
            for index in range(len(data)):
                await response.write(data[index : index + 1])
                await asyncio.sleep(interval)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response

    def _document(self, household: SimHousehold, body: bytes, joined: bool) -> tuple[str, str]:
        """The normal answer to the command in ``body`` (meter not joined when ``joined`` is False)."""
        match = _NAME.search(body)
        command = match.group(1).decode("utf-8", "replace").strip().lower() if match else ""
        profile = self._profiles[household.cloud_id]
        now = time.time()
        reading = reading_at(profile, now, self.reading_interval)
        if household.protocol == "eagle200":
            if command == "device_list":
                return answers.device_list(household, profile, reading, joined), answers.XML
            if command == "device_query":
                address = _HARDWARE.search(body)
                wanted = _hex_int(address.group(1).decode("ascii", "replace")) if address else None
                stale = _hex_int(answers.stale_meter_mac(profile))
                if wanted is not None and wanted not in (_hex_int(answers.meter_mac(profile)), stale):
                    return "<Error>Unknown device</Error>\n", answers.XML
                is_stale = household.stale_meter and wanted == stale
                names = [name.decode("utf-8", "replace") for name in _VARIABLE.findall(body)]
                totals = self._totals[household.cloud_id].advance(profile, now, self.reading_interval)
                return (
                    answers.device_query(
                        household,
                        profile,
                        reading,
                        joined and not is_stale,
                        names,
                        totals,
                        answers.stale_meter_mac(profile) if is_stale else "",
                    ),
                    answers.XML,
                )
            return "<Error>Unknown command</Error>\n", answers.XML

        want_json = _wants_json(body)
        braceless = household.braceless_json and household.protocol == "eagle100"
        if command not in _LEGACY_COMMANDS:
            return answers.legacy_error(answers.ERROR_TEXTS["unknown_command"], want_json)
        if command == "get_network_info":
            return answers.legacy_document("NetworkInfo", answers.network_info(household, profile), want_json)
        if command == "get_network_status":
            items = answers.network_status(household, profile, joined)
            return answers.legacy_document("NetworkInfo", items, want_json)
        if command == "get_schedule":
            event = _EVENT.search(body)
            wanted = event.group(1).decode("utf-8", "replace").strip().lower() if event else ""
            entries = answers.schedule_list(household, profile, wanted)
            return answers.legacy_list("ScheduleList", "ScheduleInfo", entries, want_json, braceless)
        if not joined:
            return answers.legacy_error(answers.ERROR_TEXTS["meter_not_joined"], want_json)
        if command == "get_instantaneous_demand":
            items = answers.instantaneous_demand(household, profile, reading)
            return answers.legacy_document("InstantaneousDemand", items, want_json)
        if command == "get_price":
            items = answers.price_cluster(household, profile, reading)
            return answers.legacy_document("PriceCluster", items, want_json)
        delivered, received = self._totals[household.cloud_id].advance(profile, now, self.reading_interval)
        if command == "get_history_data":
            entries = self._history(household, profile, body, now, delivered, received)
            return answers.legacy_list("HistoryData", "CurrentSummation", entries, want_json, braceless)
        items = answers.current_summation(household, profile, reading, delivered, received)
        root = "CurrentSummationDelivered" if household.old_summation_root else "CurrentSummation"
        return answers.legacy_document(root, items, want_json)

    def _history(
        self, household: SimHousehold, profile: Profile, body: bytes, now: float, delivered: float, received: float
    ) -> list[list[tuple[str, str]]]:
        """``get_history_data``: CurrentSummation entries from StartTime to EndTime (ZigBee seconds, default
        now) every Frequency seconds (default 900), at most MAX_HISTORY_ENTRIES. Earlier totals are today's less
        the base load since then: a plausible, growing series, not a replay of the demand curve."""

        def field(pattern: re.Pattern[bytes], default: int) -> int:
            match = pattern.search(body)
            value = _hex_int(match.group(1).decode("ascii", "replace").removeprefix("0x")) if match else None
            return default if value is None else value

        now_zigbee = int(now) - ZIGBEE_EPOCH
        end = min(field(_END_TIME, now_zigbee), now_zigbee)
        start = field(_START_TIME, end - 3600)
        step = max(1, field(_FREQUENCY, 900))
        entries = []
        for at in range(max(start, end - step * (MAX_HISTORY_ENTRIES - 1)), end + 1, step):
            hours_ago = (now_zigbee - at) / 3600.0
            reading = reading_at(profile, at + ZIGBEE_EPOCH, self.reading_interval)
            entries.append(
                answers.current_summation(
                    household, profile, reading, max(0.0, delivered - profile.base_kw * hours_ago), received
                )
            )
        return entries

    # --- /_sim control ----------------------------------------------------------------------------------

    def _control(self, handler):
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not _is_loopback(request.remote):
                return web.json_response({"error": "the control endpoints answer loopback only"}, status=403)
            try:
                return await handler(request)
            except ControlError as exc:
                status = 404 if str(exc).startswith("no simulated household") else 400
                return web.json_response({"error": str(exc)}, status=status)

        return guarded

    async def _json(self, request: web.Request) -> dict:
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ControlError("the body must be a JSON object") from None
        if not isinstance(data, dict):
            raise ControlError("the body must be a JSON object")
        return data

    async def http_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def http_set_fault(self, request: web.Request) -> web.Response:
        """{"cloud_id": ..., "fault": ..., "delay_ms": ...} for one household, or {"fault": ..., "rate": ...}."""
        data = await self._json(request)
        fault = data.pop("fault", None)
        if not isinstance(fault, str):
            raise ControlError('"fault" is required')
        cloud_id = data.pop("cloud_id", None)
        if cloud_id is None:
            if "rate" not in data:
                raise ControlError('give "cloud_id" (one household) or "rate" (every request)')
            self.set_fault_rate(fault, data.pop("rate"), **data)
        elif isinstance(cloud_id, str):
            self.set_fault(cloud_id, fault, **data)
        else:
            raise ControlError('"cloud_id" must be a string')
        return web.json_response({"ok": True, "faults": len(self._faults), "rates": len(self._rates)})

    async def http_clear_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"ok": True})

    async def http_clear_fault(self, request: web.Request) -> web.Response:
        self.clear_fault(request.match_info["cloud_id"])
        return web.json_response({"ok": True})

    async def http_add_household(self, request: web.Request) -> web.Response:
        data = await self._json(request)
        cloud_id = data.pop("cloud_id", None)
        if not isinstance(cloud_id, str):
            raise ControlError('"cloud_id" is required')
        household = self.add_household(cloud_id, **data)
        household.origin = "http"
        return web.json_response({"ok": True, "household": household.public()}, status=201)

    async def http_household(self, request: web.Request) -> web.Response:
        household = self.household(request.match_info["cloud_id"])
        fault = self._faults.get(household.cloud_id)
        return web.json_response(
            {
                **household.public(),
                "requests": self.requests(household.cloud_id),
                "fault": fault.to_dict() if fault else None,
                "demand_kw": self.demand_kw(household.cloud_id),
            }
        )

    async def http_remove_household(self, request: web.Request) -> web.Response:
        if not self.remove_household(request.match_info["cloud_id"]):
            raise ControlError(f"no simulated household {request.match_info['cloud_id'][:12]!r}")
        return web.json_response({"ok": True})


def _wants_json(body: bytes) -> bool:
    match = _FORMAT.search(body)
    return bool(match) and match.group(1).strip().lower() == b"json"


def _basic_auth(header: str) -> tuple[str, str]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return user.strip().lower(), password


def _is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _reset(request: web.Request) -> web.StreamResponse:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashing gateway does, and answer nothing."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()
    raise asyncio.CancelledError  # aiohttp drops a cancelled handler's connection quietly


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def bind(host: str, port: int, backlog: int = 4096) -> socket.socket:
    """A listening socket, bound before the server starts so its port is known (port 0: any free one).

    Loopback only, whoever calls it (the command, ``run_simulator``, a benchmark): the /_sim endpoints change
    answers, and with ``--from-db`` it checks guesses against the study's real credentials. The name is resolved once
    and the checked address is the one bound, so a name cannot resolve to loopback for the check and to
    another interface for the bind.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror:
        infos = []
    address = infos[0][4][0] if infos else ""
    try:
        loopback = ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        loopback = False
    if not host or not loopback:
        raise ValueError(f"refusing to bind {host!r}: the EAGLE simulator listens on loopback only (e.g. 127.0.0.1)")
    return socket.create_server((address, port), family=family, backlog=backlog)


async def start(simulator: Simulator, sock: socket.socket) -> web.AppRunner:
    """Serve ``simulator`` on an already listening socket; returns the runner to clean up."""
    runner = web.AppRunner(simulator.application(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.SockSite(runner, sock, backlog=4096)
    await site.start()
    return runner
