"""``python -m bench.multipart``: build and read a 60-part ``$batch`` (both directions), ours
(``bridge/wire``) against the libraries that could do it: the standard library's ``email`` parser and
aiohttp's ``MultipartReader``/``MultipartWriter``. Best of 9 runs, CPU time per batch (process time,
so other work on the machine weighs less). A micro-benchmark, outside ``python -m bench``'s sections.

The libraries only split the body into parts (and write them); ours also reads each part's HTTP
request or status line and headers, so the comparison flatters them.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import time
from collections.abc import Awaitable, Callable
from email.message import Message

import aiohttp
from aiohttp.base_protocol import BaseProtocol
from multidict import CIMultiDict

from bridge.systems.batch import BatchOperation, build_independent, parse_batch_response
from bridge.wire.batch import BatchResponse, parse_batch, write_batch

BASE = "https://h.example/data/"
PARTS = 60
ROUNDS = 9
CALLS = 50


def _operations() -> list[BatchOperation]:
    return [
        BatchOperation(
            "PATCH",
            f"DeliveryModesV2(dataAreaId='usmf',ModeCode='M{n:03d}')?cross-company=true",
            {"ModeDescription": f"mode {n}", "dataAreaId": "usmf"},
            {"If-Match": 'W/"abc"', "Prefer": "return=representation"},
        )
        for n in range(PARTS)
    ]


def _responses() -> list[BatchResponse | list[BatchResponse]]:
    return [
        BatchResponse(
            200,
            {"Content-Type": "application/json; odata.metadata=minimal", "ETag": f'W/"{n}"'},
            json.dumps({"@odata.etag": f'W/"{n}"', "ModeCode": f"M{n:03d}", "ModeDescription": "m"}).encode(),
            str(n + 1),
        )
        for n in range(PARTS)
    ]


def _best(call: Callable[[], object]) -> float:
    """Microseconds of CPU per call, best of ``ROUNDS``."""
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(CALLS):
            call()
        rounds.append((time.process_time() - started) / CALLS * 1e6)
    return min(rounds)


async def _best_async(call: Callable[[], Awaitable[object]]) -> float:
    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(CALLS):
            await call()
        rounds.append((time.process_time() - started) / CALLS * 1e6)
    return min(rounds)


async def main() -> None:
    ops = _operations()
    content_type, body = build_independent(BASE, ops)
    responses = _responses()
    answer_type, answer = write_batch(responses)
    answer_text = answer.decode()

    def email_split() -> list[object]:
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(head + body)
        parts = message.get_payload()
        assert isinstance(parts, list)
        return [(part["Content-ID"], part.get_payload()) for part in parts if isinstance(part, Message)]

    async def aiohttp_split() -> list[object]:
        loop = asyncio.get_running_loop()
        stream = aiohttp.StreamReader(BaseProtocol(loop), 2**16, loop=loop)
        stream.feed_data(body)
        stream.feed_eof()
        reader = aiohttp.MultipartReader(CIMultiDict({"Content-Type": content_type}), stream)
        parts: list[object] = []
        while (part := await reader.next()) is not None:
            assert isinstance(part, aiohttp.BodyPartReader)
            parts.append((part.headers.get("Content-ID"), await part.text()))
        return parts

    async def aiohttp_write() -> bytes:
        writer = aiohttp.MultipartWriter("mixed")
        for number, op in enumerate(ops, start=1):
            request = (
                f"{op.method} {BASE}{op.path} HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in op.headers.items())
                + f"\r\n{json.dumps(op.body)}"
            )
            part_headers = {"Content-Type": "application/http", "Content-Transfer-Encoding": "binary"}
            writer.append(request, {**part_headers, "Content-ID": str(number)})
        return await writer.as_bytes()

    assert len(email_split()) == len(await aiohttp_split()) == len(parse_batch(body, content_type)) == PARTS
    figures = [
        ("bridge builds the request", _best(lambda: build_independent(BASE, ops))),
        ("  aiohttp MultipartWriter", await _best_async(aiohttp_write)),
        ("emulator reads the request", _best(lambda: parse_batch(body, content_type))),
        ("  email parser (split only)", _best(email_split)),
        ("  aiohttp MultipartReader (split only)", await _best_async(aiohttp_split)),
        ("emulator writes the answer", _best(lambda: write_batch(responses))),
        ("bridge reads the answer", _best(lambda: parse_batch_response(answer_type, answer_text))),
    ]
    print(f"{PARTS}-part $batch, CPU per batch, best of {ROUNDS}:")
    for name, micros in figures:
        print(f"  {name:40s} {micros:7.0f} µs")


if __name__ == "__main__":
    asyncio.run(main())
