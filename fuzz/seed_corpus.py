#!/usr/bin/env python3
"""Regenerates the committed seed corpus, fuzz/corpus/<target>/, from realistic events:
canonical lines, Kong logs and batches, truncated and wrong-typed inputs. For engine_ingest the
first byte is the mode (bit 0: Kong, bit 1: check future timestamps), then messages split on
newlines (see fuzz_targets/engine_ingest.rs). Run: python3 fuzz/seed_corpus.py"""
import json, os
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
T0 = 1789050000000  # 2026-09-10T14:20:00Z

def w(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), "wb").write(data)

full = json.dumps({"ts": "2026-09-10T14:20:00Z", "client_id": "msft-bing", "event_id": "e-1",
    "units": 250, "product": "search", "endpoint": "/2/tweets/search/recent", "status": 200,
    "bytes": 1234, "origin_ip": "203.0.113.9", "origin_country": "US", "origin_asn": 8075,
    "extra": {"nested": [1, 2, 3]}})
c = "decode_canonical"
w(c, "full", full)
w(c, "minimal_epoch_ms", '{"ts":%d,"client_id":"steady"}' % T0)
w(c, "rfc3339_offset_fraction", '{"ts":"2026-09-10T16:20:00.123+02:00","client_id":"acme","units":1.5}')
w(c, "escaped_strings", '{"ts":%d,"client_id":"a\\u00e9\\n","endpoint":"\\/2\\/x","units":null}' % T0)
w(c, "truncated", full[: len(full) // 2])
w(c, "units_string", '{"ts":%d,"client_id":"acme","units":"5"}' % T0)
w(c, "ts_bool", '{"ts":true,"client_id":"acme"}')
w(c, "client_id_number", '{"ts":%d,"client_id":42}' % T0)
w(c, "array_mixed", "[%s,{\"ts\":1},\"x\"]" % full)
w(c, "invalid_utf8", b'{"ts":1789050000000,"client_id":"ac\xff\xfeme"}')
w(c, "float_ts_negative_units", '{"ts":1.78905e12,"client_id":"acme","units":-1,"status":70000}')
w(c, "long_client_id", '{"ts":%d,"client_id":"%s"}' % (T0, "x" * 257))

log = {"request": {"id": "req-1", "method": "GET", "uri": "/2/tweets/search/recent?q=x",
        "headers": {"apikey": "key-123", "host": "api"}, "size": 120},
       "response": {"status": 200, "size": 4096, "headers": {}},
       "route": {"id": "r1", "name": "search-recent", "paths": ["/2/tweets/search/recent"]},
       "service": {"id": "s1", "name": "search"},
       "consumer": {"id": "c0ffee", "username": "msft-bing"},
       "client_ip": "203.0.113.9", "started_at": T0,
       "latencies": {"proxy": 12, "kong": 1, "request": 13}}
anon = dict(log); del anon["consumer"]
anon2 = json.loads(json.dumps(anon)); anon2["request"]["headers"]["apikey"] = ["key-9", "key-10"]
noroute = json.loads(json.dumps(log)); del noroute["route"]; noroute["started_at"] = "2026-09-10T14:20:01Z"
k = "decode_gateway"
w(k, "single", json.dumps(log, indent=2))
w(k, "batch", json.dumps([log, 17, anon, noroute]))
w(k, "anonymous_header", json.dumps(anon2))
w(k, "no_route_uri_query", json.dumps(noroute))
w(k, "truncated", json.dumps(log)[:150])
w(k, "empty_batch", "[]")
w(k, "custom_id_empty", json.dumps({**log, "consumer": {"custom_id": "", "id": "c1"}}))
w(k, "started_at_bad", json.dumps({**log, "started_at": {"x": 1}}))
w(k, "invalid_utf8", b'{"consumer":{"username":"\xc3\x28"},"started_at":1789050000000}')
# the gateways' documented logs (tests/fixtures/gateways), and shapes that exercise mappings
fixtures = os.path.join(os.path.dirname(root), "..", "tests", "fixtures", "gateways")
for name in sorted(os.listdir(fixtures)):
    if name.endswith(".json"):
        w(k, "fixture_" + name[:-5], open(os.path.join(fixtures, name), "rb").read())
w(k, "kong_string_sizes_units", json.dumps({**log, "response": {"status": "200", "size": "434",
    "headers": {"x-records-returned": ["7", "8"]}}}))
w(k, "mapping_generic", json.dumps({"consumer": None, "request_headers": {"x-api-key": "k"},
    "start_time": "1789050000.5", "n": "3", "tags": ["a", "9"], "asn": "AS8075",
    "who": [{"name": "w"}], "path": "/x?y=1", "response_code": "-"}))

def ev(i, client, units=10, **kw):
    d = {"ts": T0 + i * 6000, "client_id": client, "event_id": "%s-%d" % (client, i), "units": units}
    d.update(kw); return json.dumps(d)
e = "engine_ingest"
good = [ev(i, c, product="search", endpoint="/2/tweets/search/recent", origin_country="US")
        for i in range(12) for c in ("msft-bing", "steady")]
seq = good[:10] + [good[3], ev(-30, "steady"), "garbage", full[:40], ev(20, "msft-bing", product="firehose", origin_country="KP")] + good[10:] + [ev(200, "newbie", origin_asn=64512)]
w(e, "json_sequence", b"\x00" + "\n".join(seq).encode())
w(e, "json_future_checked", b"\x02" + "\n".join([ev(0, "acme"), ev(10**7, "acme"), ev(1, "acme")]).encode())
w(e, "json_bad_mix", b"\x00" + b"\n".join([b"", b"[1]", b'{"ts":true,"client_id":"a"}', b'{"ts":1,"client_id":"a","units":"5"}', b"\xff\xfe", ev(0, "a").encode()]))
klines = [json.dumps({**log, "started_at": T0 + i * 1000, "request": {**log["request"], "id": "r%d" % i}}) for i in range(6)]
w(e, "kong_sequence", b"\x01" + "\n".join(klines + [json.dumps([log, anon, 5]), "[]", "{"]).encode())
w(e, "kong_future_checked", b"\x03" + "\n".join([klines[0], json.dumps({**log, "started_at": T0 + 10**8})]).encode())
# regression: epoch-ms timestamps at the ends of i64 made the engine's minute arithmetic overflow
w(e, "extreme_timestamps", b"\x00" + b"\n".join([
    b'{"ts":9223372036854775807,"client_id":"a"}',
    b'{"ts":-9223372036854775808,"client_id":"a","event_id":"x"}',
    b'{"ts":253402300799999,"client_id":"a","units":1e308}',
    b'{"ts":-62167219200000,"client_id":"b","units":1e308}']))
