"""One request exactly as written, over a plain socket (an HTTP client would normalise `%2F`, `..`, raw
bytes), and the verdict on its answer: the JSON error shape, or why it is a finding."""
from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass

ANSWER_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    status: int          # 0: no answer
    content_type: str
    code: str            # the JSON error's code, '' when the body is not the error shape
    error: str           # why there was no answer ('' when there was one)


async def send(port: int, method: str, target: str, headers: list[tuple[str, str]],
               body: bytes | None = None) -> Answer:
    """HTTP/1.1 with Connection: close; headers as given (repeated names stay repeated)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="surrogateescape")
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), ANSWER_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError) as exc:
        return Answer(0, "", "", f"connect: {type(exc).__name__}")
    try:
        writer.write(head + (body or b""))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), ANSWER_TIMEOUT_S)
    except asyncio.TimeoutError:
        return Answer(0, "", "", "no answer in time")
    except OSError as exc:
        return Answer(0, "", "", f"connection: {type(exc).__name__}")
    finally:
        writer.close()
    return parse(data)


def parse(data: bytes) -> Answer:
    head, _, payload = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        return Answer(0, "", "", "not an HTTP answer" if data else "closed without an answer")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(int(parts[1]), headers.get("content-type", "").split(";")[0], error_code(payload), "")


def error_code(payload: bytes) -> str:
    try:
        error = json.loads(payload)["error"]
    except (ValueError, KeyError, TypeError):
        return ""
    if isinstance(error, dict) and set(error) == {"code", "message"} and error["code"] and error["message"]:
        return str(error["code"])
    return ""


@dataclass(frozen=True)
class Case:
    """One hostile request and what must come back: a 4xx (`expect` narrows it) with the JSON error."""

    kind: str
    name: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    expect: tuple[int, ...] = ()      # () : any 4xx
    json_error: bool = True           # False: aiohttp's own parser answers (docs/architecture.md)


@dataclass(frozen=True)
class Verdict:
    kind: str
    name: str
    target: str
    status: int
    code: str
    finding: str          # '' when the answer is what it must be

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def judge(case: Case, answer: Answer) -> Verdict:
    finding = ""
    if answer.status == 0:
        finding = f"no answer ({answer.error})"
    elif answer.status >= 500:
        finding = f"a {answer.status} (server error) to a bad request"
    elif 200 <= answer.status < 300:
        finding = f"a {answer.status}: the hostile request was accepted"
    elif not 400 <= answer.status < 500:
        finding = f"a {answer.status}, not a 4xx"
    elif case.expect and answer.status not in case.expect:
        finding = f"{answer.status}, expected {'/'.join(map(str, case.expect))}"
    elif case.json_error and (answer.content_type != "application/json" or not answer.code):
        finding = "the 4xx is not the JSON error {error: {code, message}}"
    return Verdict(case.kind, case.name, case.target, answer.status, answer.code, finding)


async def run_cases(port: int, cases: list[Case]) -> list[Verdict]:
    """One case after another (they are few; their order never matters)."""
    out = []
    for case in cases:
        answer = await send(port, case.method, case.target, list(case.headers), case.body)
        out.append(judge(case, answer))
    return out
