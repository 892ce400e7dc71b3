"""client/flagstaff/test_vectors.json, the conformance vectors for other clients, against the engine."""

import json
from pathlib import Path
from typing import Any

import pytest

from flagstaff.engine import BUCKETS, bucket, compile_segments, flag_from_dict, resolve

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "client" / "flagstaff" / "test_vectors.json").read_text(encoding="utf-8")
)


def _murmur3_x86_32(data: bytes, seed: int = 0) -> int:
    """Austin Appleby's MurmurHash3_x86_32, written out independently of mmh3."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF

    def rotl(value: int, shift: int) -> int:
        return ((value << shift) | (value >> (32 - shift))) & mask

    def mix(block: int) -> int:
        return (rotl((block * c1) & mask, 15) * c2) & mask

    hash_ = seed
    full = len(data) - len(data) % 4
    for offset in range(0, full, 4):
        hash_ = rotl(hash_ ^ mix(int.from_bytes(data[offset : offset + 4], "little")), 13)
        hash_ = (hash_ * 5 + 0xE6546B64) & mask
    tail = data[full:]
    if tail:
        hash_ ^= mix(int.from_bytes(tail, "little"))
    hash_ ^= len(data)
    hash_ ^= hash_ >> 16
    hash_ = (hash_ * 0x85EBCA6B) & mask
    hash_ ^= hash_ >> 13
    hash_ = (hash_ * 0xC2B2AE35) & mask
    return hash_ ^ (hash_ >> 16)


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"", 0), (b"hello", 0x248BFA47), (b"The quick brown fox jumps over the lazy dog", 0x2E4FF723)],
)
def test_murmur3_reference__published_vectors__match(data, expected):
    assert _murmur3_x86_32(data) == expected


def test_vectors__bucket_list__covers_unicode_and_enough_cases():
    units = {vector["unit"] for vector in VECTORS["buckets"]}
    assert len(VECTORS["buckets"]) >= 50
    assert any(len(unit.encode()) > len(unit) for unit in units)


@pytest.mark.parametrize(
    "vector", VECTORS["buckets"], ids=lambda vector: f"{vector['seed']}:{vector['unit']}"
)
def test_bucket__vector__matches_engine(vector):
    assert bucket(vector["seed"], vector["unit"]) == vector["bucket"]


@pytest.mark.parametrize(
    "vector", VECTORS["buckets"], ids=lambda vector: f"{vector['seed']}:{vector['unit']}"
)
def test_bucket__vector__matches_reference_murmur3(vector):
    key = f"{vector['seed']}:{vector['unit']}".encode()
    assert _murmur3_x86_32(key) % BUCKETS == vector["bucket"]


@pytest.mark.parametrize("case", VECTORS["resolutions"], ids=lambda case: case["description"])
def test_resolve__vector__matches_expected(case):
    segments = compile_segments(case["segments"]) if "segments" in case else None
    resolution = resolve(flag_from_dict(case["flag"], segments=segments), case["context"])
    assert {
        "version": resolution.value_version,
        "reason": resolution.reason,
        "variant": resolution.variant,
        "arm": resolution.arm,
        "split_id": resolution.split_id,
        "rule_index": resolution.rule_index,
        "bucket": resolution.bucket,
    } == case["expected"]
