"""Request bodies of the OpenAI-compatible endpoints (the subset this gateway implements) and error bodies.

Unknown fields are ignored, as OpenAI clients send many optional ones (``frequency_penalty``, ...). Fields that
would change the meaning of the answer and are not implemented (tools, echo, ``logprobs`` of ``/v1/completions``)
are refused with a 400 rather than silently ignored. ``top_p`` is accepted but the server's configured value is
used. Chat completions implement ``logprobs`` / ``top_logprobs`` (0–20), as OpenAI does: ``top_logprobs`` needs
``logprobs: true``. ``stop``: at most ``MAX_STOPS`` strings of at most ``MAX_STOP_CHARS`` characters each.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    ValidationError,
)

from opentao.records import Message


def _integral(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def json_int(**bounds: int) -> Any:
    """An integer as JSON Schema has it: 7 and 7.0, not "7" or true; bounds inside, so the spec states them."""
    return Annotated[int, Strict(), Field(**bounds), BeforeValidator(_integral)]


# JSON types as the OpenAPI spec states them: no "7" for 7 or 0 for false
Float = Annotated[float, Strict()]

# Stop strings cost the generate thread work on every decoding step; both their number and length are bounded
# (OpenAI allows 4; the length cap keeps the matcher's window small: see opentao.generate.stopping).
MAX_STOPS = 4
MAX_STOP_CHARS = 256
StopString = Annotated[str, StringConstraints(min_length=1, max_length=MAX_STOP_CHARS)]



class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(..., min_length=1, max_length=256)
    max_tokens: json_int(ge=1) | None = None
    max_completion_tokens: json_int(ge=1) | None = None
    temperature: Float = Field(1.0, ge=0.0, le=2.0)
    top_p: Float = Field(1.0, gt=0.0, le=1.0)
    n: json_int(ge=1, le=16) = 1
    stop: StopString | Annotated[list[StopString], Field(max_length=MAX_STOPS)] | None = None
    seed: json_int(ge=0, le=2**63 - 1) | None = None
    stream: StrictBool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = Field(None, max_length=256)
    metadata: Annotated[dict[Annotated[str, StringConstraints(max_length=64)],
                             Annotated[str, StringConstraints(max_length=512)]], Field(max_length=16)] | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def token_budget(self, default: int) -> int:
        """The larger of the two spellings, so a limit check on it covers both."""
        return max(self.max_completion_tokens or 0, self.max_tokens or 0) or default

    def params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens or self.max_completion_tokens,
                "n": self.n, "stop": list(self.stops()), "seed": self.seed, "stream": self.stream}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def plain(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


MAX_TOP_LOGPROBS = 20


class ChatCompletionRequest(_Body):
    # fields accepted only in their "off" form; the OpenAPI spec says so, so fuzzers do not send "on" as valid
    OPENAPI_OFF: ClassVar[dict[str, Any]] = {"tools": {"type": "null"}, "functions": {"type": "null"}}
    # top_logprobs only together with logprobs: true (JSON Schema if/then, stated in the published spec)
    OPENAPI_EXTRA: ClassVar[dict[str, Any]] = {
        "if": {"required": ["top_logprobs"], "properties": {"top_logprobs": {"type": "integer"}}},
        "then": {"required": ["logprobs"], "properties": {"logprobs": {"const": True}}}}
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=512)
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    logprobs: StrictBool | None = None
    top_logprobs: json_int(ge=0, le=MAX_TOP_LOGPROBS) | None = None

    def unsupported(self) -> str | None:
        if self.tools is not None or self.functions is not None:
            return "tools and function calling are not supported by this server"
        if self.top_logprobs is not None and not self.logprobs:
            return "top_logprobs needs logprobs: true"
        return None

    def top_logprobs_asked(self) -> int | None:
        """None without logprobs; else how many alternatives each token should list (0 by default)."""
        return (self.top_logprobs or 0) if self.logprobs else None

    def params(self) -> dict[str, Any]:
        return {**super().params(), "top_logprobs": self.top_logprobs_asked()}

    def chat(self) -> list[Message]:
        return [m.plain() for m in self.messages]


class CompletionRequest(_Body):
    OPENAPI_OFF: ClassVar[dict[str, Any]] = {"suffix": {"type": "null"}, "echo": {"enum": [False, None]},
                                              "logprobs": {"enum": [0, None]}}
    OPENAPI_EXTRA: ClassVar[dict[str, Any]] = {}
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=64)] = Field(...)
    echo: StrictBool | None = None
    logprobs: json_int(ge=0, le=5) | None = None
    suffix: str | None = None

    def unsupported(self) -> str | None:
        if self.echo or self.logprobs or self.suffix is not None:
            return "echo, logprobs and suffix are not supported by this server"
        return None

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    def top_logprobs_asked(self) -> int | None:
        return None  # refused above (the legacy format is not implemented)


def error_body(message: str, type_: str = "invalid_request_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _union_tag(part: Any) -> bool:
    """pydantic names the union member that failed in ``loc`` ("str", "list[str]", "constrained-str"): not a field."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "dict", "list", "none")
                                      or "[" in part or "-" in part)


def describe_validation_error(exc: ValidationError) -> tuple[str, str | None]:
    """One readable line for the first problem, and the parameter it concerns."""
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"] if not _union_tag(x))
    msg = err["msg"]
    if err["type"] == "missing":
        return f"missing required parameter: '{loc}'", loc.split(".")[0] or None
    return f"invalid value for '{loc}': {msg}", (loc.split(".")[0] or None)


# --- input hygiene: what JSON can carry but a request must not ------------------------------------------
MAX_INT_DIGITS = 32  # far above every integer bound above (seed < 2**63 has 19 digits)


class UnacceptableJSON(ValueError):
    """A JSON body that parses but cannot be served or logged: a huge integer, a lone UTF-16 surrogate."""


def bounded_int(text: str) -> int:
    """``json.loads(parse_int=...)``: a clear error for an integer literal too long to be any valid value
    (Python itself refuses ints over 4300 digits with a bare ValueError, and converting one is quadratic)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise UnacceptableJSON(f"an integer of {len(text.lstrip('-'))} digits, out of range for every parameter")
    return int(text)


def find_lone_surrogate(value: Any, path: str = "") -> str | None:
    """The location of the first string (key or value) holding a lone UTF-16 surrogate, e.g. ``"\\ud800"``.

    JSON escapes can spell one, Python's ``json`` accepts it, but it is not Unicode text: it cannot be encoded
    as UTF-8 (the log, the tokenizer), so such a request is refused before it reaches either."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where or "(body)"
        elif isinstance(item, dict):
            for k, v in item.items():
                sub = f"{where}.{k}" if where else str(k)
                if find_lone_surrogate(k) is not None:
                    return sub.encode("utf-8", "backslashreplace").decode("ascii")
                stack.append((v, sub))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None
