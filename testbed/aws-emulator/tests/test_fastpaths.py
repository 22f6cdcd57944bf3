"""The indexes and the keep-alive server: same answers as the plain scans, on the wire."""

from __future__ import annotations

import base64
import http.client
import random
import re
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from botocore.exceptions import ClientError

from conftest import ACCOUNT

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ecx_emulator import elasticache as ecmod  # noqa: E402
from ecx_emulator import s3index  # noqa: E402
from ecx_emulator.state import CallLog, Job, JobQueue  # noqa: E402

AUTH_EC = (
    "AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEUSER0001/20260101/us-east-1/elasticache/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=0"
)
AUTH_S3 = AUTH_EC.replace("/elasticache/", "/s3/")


def sweep(ec: Any, **kw: Any) -> tuple[list[str], list[dict]]:
    """All names of a paginated DescribeSnapshots, and the raw pages."""
    names: list[str] = []
    pages = []
    marker = None
    while True:
        args = dict(kw)
        if marker:
            args["Marker"] = marker
        page = ec.describe_snapshots(**args)
        pages.append(page)
        names += [s["SnapshotName"] for s in page["Snapshots"]]
        marker = page.get("Marker")
        if not marker:
            return names, pages


@pytest.fixture
def many(emulator: Any) -> list[dict]:
    """137 snapshots in shuffled creation order: 3 replication groups, clusters, sources."""
    rng = random.Random(7)
    specs = []
    for i in range(137):
        spec: dict[str, Any] = {"name": f"snap-{i:04d}"}
        if i % 3 == 0:
            spec["replication_group_id"] = f"rg-{i % 2}"
        else:
            spec["cache_cluster_id"] = f"cc-{i % 4}"
        if i % 10 == 0:
            spec["snapshot_source"] = "automated"
        specs.append(spec)
    rng.shuffle(specs)
    for spec in specs:
        emulator.seed(**spec)
    return specs


def expected(specs: list[dict], pred: Any = lambda s: True) -> list[str]:
    return sorted(s["name"] for s in specs if pred(s))


@pytest.mark.parametrize("max_records", [20, 33, 50])
def test_unfiltered_sweep_pages_in_name_order(ec: Any, many: list[dict], max_records: int) -> None:
    names, pages = sweep(ec, MaxRecords=max_records)
    assert names == expected(many)
    assert [len(p["Snapshots"]) for p in pages[:-1]] == [max_records] * (len(pages) - 1)
    assert 1 <= len(pages[-1]["Snapshots"]) <= max_records
    assert "Marker" not in pages[-1]
    # a marker is opaque but stable: the same one gives the same page again
    again = ec.describe_snapshots(MaxRecords=max_records, Marker=pages[0]["Marker"])
    assert again["Snapshots"] == pages[1]["Snapshots"]


def test_exact_multiple_of_page_size_has_no_trailing_marker(emulator: Any, ec: Any) -> None:
    for i in range(40):
        emulator.seed(f"s-{i:02d}")
    names, pages = sweep(ec, MaxRecords=20)
    assert len(names) == 40 and len(pages) == 2
    assert "Marker" not in pages[1]


@pytest.mark.parametrize(
    "kw,pred",
    [
        ({"ReplicationGroupId": "rg-1"}, lambda s: s.get("replication_group_id") == "rg-1"),
        ({"CacheClusterId": "cc-3"}, lambda s: s.get("cache_cluster_id") == "cc-3"),
        ({"SnapshotSource": "system"}, lambda s: s.get("snapshot_source") == "automated"),
        ({"SnapshotSource": "user"}, lambda s: s.get("snapshot_source", "manual") == "manual"),
        (
            {"ReplicationGroupId": "rg-0", "SnapshotSource": "manual"},
            lambda s: s.get("replication_group_id") == "rg-0" and s.get("snapshot_source", "manual") == "manual",
        ),
    ],
)
def test_filtered_sweeps(ec: Any, many: list[dict], kw: dict, pred: Any) -> None:
    names, pages = sweep(ec, MaxRecords=20, **kw)
    assert names == expected(many, pred)
    assert all(len(p["Snapshots"]) == 20 for p in pages[:-1])


def test_sparse_filter_spanning_many_names(emulator: Any, ec: Any) -> None:
    # matches are far apart in name order: the walk crosses many index chunks
    for i in range(400):
        emulator.seed(f"x-{i:04d}", cache_cluster_id="hit" if i % 97 == 0 else "miss")
    names, pages = sweep(ec, MaxRecords=20, CacheClusterId="hit")
    assert names == [f"x-{i:04d}" for i in range(0, 400, 97)]
    assert len(pages) == 1 and "Marker" not in pages[0]
    assert ec.describe_snapshots(CacheClusterId="none-such")["Snapshots"] == []


def test_sweep_sees_copies_and_deletes_between_pages(emulator: Any, ec: Any, many: list[dict]) -> None:
    first = ec.describe_snapshots(MaxRecords=20)
    last_seen = first["Snapshots"][-1]["SnapshotName"]
    # a copy sorting after the marker shows up; one before it does not; a deleted one is gone
    ec.copy_snapshot(SourceSnapshotName="snap-0001", TargetSnapshotName="zz-late")
    ec.copy_snapshot(SourceSnapshotName="snap-0001", TargetSnapshotName="AA-early")  # stored lowercased
    ec.delete_snapshot(SnapshotName="snap-0100")
    rest, _ = sweep(ec, MaxRecords=50, Marker=first["Marker"])
    want = [n for n in expected(many) if n > last_seen and n != "snap-0100"] + ["zz-late"]
    assert rest == want
    everything, _ = sweep(ec, MaxRecords=50)
    assert everything[0] == "aa-early" and "snap-0100" not in everything


def test_name_filter_with_marker_and_other_filters(emulator: Any, ec: Any) -> None:
    emulator.seed("m-1", replication_group_id="g")
    assert [s["SnapshotName"] for s in ec.describe_snapshots(SnapshotName="m-1", ReplicationGroupId="g")["Snapshots"]] == ["m-1"]
    assert ec.describe_snapshots(SnapshotName="m-1", ReplicationGroupId="other")["Snapshots"] == []
    before = base64.urlsafe_b64encode(b"ecx1:m-0").decode()
    after = base64.urlsafe_b64encode(b"ecx1:m-1").decode()
    assert len(ec.describe_snapshots(SnapshotName="m-1", Marker=before)["Snapshots"]) == 1
    assert ec.describe_snapshots(SnapshotName="m-1", Marker=after)["Snapshots"] == []


def test_validation_order_kept(emulator: Any, ec: Any) -> None:
    def code(**kw: Any) -> str:
        with pytest.raises(ClientError) as ei:
            ec.describe_snapshots(**kw)
        return ei.value.response["Error"]["Code"]

    # MaxRecords first, then the rg/cc combination, then the name, then the marker
    assert code(MaxRecords=19, ReplicationGroupId="a", CacheClusterId="b") == "InvalidParameterValue"
    assert code(ReplicationGroupId="a", CacheClusterId="b", SnapshotName="ghost") == "InvalidParameterCombination"
    assert code(SnapshotName="ghost", Marker="%%%") == "SnapshotNotFoundFault"
    assert code(Marker="bm90LWVjeDE=") == "InvalidParameterValue"


def test_status_changes_show_in_cached_xml(emulator: Any, ec: Any) -> None:
    emulator.seed("cached")
    assert ec.describe_snapshots(SnapshotName="cached")["Snapshots"][0]["SnapshotStatus"] == "available"
    emulator.ctl("/snapshots/cached/status", {"status": "creating"})
    assert ec.describe_snapshots(SnapshotName="cached")["Snapshots"][0]["SnapshotStatus"] == "creating"
    s = ec.describe_snapshots(SnapshotName="cached", ShowNodeGroupConfig=True)["Snapshots"][0]
    assert s["SnapshotStatus"] == "creating"
    assert "NodeGroupConfiguration" in s["NodeSnapshots"][0]
    assert "NodeGroupConfiguration" not in ec.describe_snapshots(SnapshotName="cached")["Snapshots"][0]["NodeSnapshots"][0]


def test_raw_wire_shape(emulator: Any) -> None:
    """The XML the Rust SDK parses: element order and the marker placement."""
    for i in range(21):
        emulator.seed(f"w-{i:02d}")
    u = urlsplit(emulator.endpoint)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    body = urlencode({"Action": "DescribeSnapshots", "Version": "2015-02-02", "MaxRecords": "20"})
    c.request("POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded", "Authorization": AUTH_EC})
    r = c.getresponse()
    xml = r.read().decode()
    assert r.status == 200 and r.getheader("Content-Type") == "text/xml"
    assert xml.startswith(
        '<DescribeSnapshotsResponse xmlns="http://elasticache.amazonaws.com/doc/2015-02-02/">'
        "<DescribeSnapshotsResult><Marker>"
    )
    assert xml.count("<Snapshot>") == 20
    assert "</Snapshots></DescribeSnapshotsResult><ResponseMetadata><RequestId>" in xml
    snap = xml[xml.index("<Snapshot>"):xml.index("</Snapshot>")]
    tags = re.findall(r"<(\w+)>", snap)
    assert tags[:6] == ["Snapshot", "SnapshotName", "SnapshotStatus", "SnapshotSource", "CacheNodeType", "Engine"]
    assert tags[-2:] == ["ARN", "DataTiering"]
    c.close()


# ---------------------------------------------------------------------------
# S3 prefix listing through the key index


def test_list_objects_v2_prefix_matches_a_full_scan(emulator: Any, s3: Any) -> None:
    s3.create_bucket(Bucket="idx")
    keys = [f"exp-{i}-0001.rdb" for i in range(60)] + [f"exp-{i}-0002.rdb" for i in range(0, 60, 7)]
    keys += ["exp-1/a", "exp-1/b/c", "other", "exp", "exp-10"]
    for k in keys:
        s3.put_object(Bucket="idx", Key=k, Body=b"x")
    s3.delete_object(Bucket="idx", Key="exp-3-0001.rdb")
    keys.remove("exp-3-0001.rdb")
    for prefix in ["exp-1", "exp-1-0001.rdb", "exp-3", "exp-59-", "nope", "exp-1/", "o", "exp"]:
        got = [o["Key"] for o in s3.list_objects_v2(Bucket="idx", Prefix=prefix).get("Contents", [])]
        assert got == sorted(k for k in keys if k.startswith(prefix)), prefix
        old = [o["Key"] for o in s3.list_objects(Bucket="idx", Prefix=prefix).get("Contents", [])]
        assert old == got, prefix
    r = s3.list_objects_v2(Bucket="idx", Prefix="exp-1", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["exp-1/"]
    assert "exp-1/a" not in [o["Key"] for o in r["Contents"]]
    # paging with a prefix
    seen, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket="idx", Prefix="exp-", MaxKeys=10, **kw)
        seen += [o["Key"] for o in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == sorted(k for k in keys if k.startswith("exp-"))
    assert s3.list_objects_v2(Bucket="idx", Prefix="exp-2", StartAfter="exp-20-0001.rdb")["KeyCount"] == len(
        [k for k in keys if k.startswith("exp-2") and k > "exp-20-0001.rdb"]
    )


def test_export_objects_are_listed_by_prefix(emulator: Any, ec: Any, s3: Any) -> None:
    from test_export import make_bucket  # noqa: PLC0415

    make_bucket(emulator, "exports")
    emulator.seed("src", node_groups=2, replication_group_id="rg")
    assert s3.list_objects_v2(Bucket="exports", Prefix="t-0001.rdb")["KeyCount"] == 0
    ec.copy_snapshot(SourceSnapshotName="src", TargetSnapshotName="t", TargetBucket="exports")
    from conftest import wait_for  # noqa: PLC0415

    wait_for(lambda: s3.list_objects_v2(Bucket="exports", Prefix="t-")["KeyCount"] == 2)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="exports", Prefix="t-0002")["Contents"]] == ["t-0002.rdb"]


# ---------------------------------------------------------------------------
# keep-alive HTTP/1.1


def test_connection_is_kept_alive(emulator: Any) -> None:
    emulator.seed("ka")
    u = urlsplit(emulator.endpoint)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    c.connect()
    sock = c.sock
    body = urlencode({"Action": "DescribeSnapshots", "Version": "2015-02-02", "SnapshotName": "ka"})
    for _ in range(3):
        c.request("POST", "/", body, {"Content-Type": "application/x-www-form-urlencoded", "Authorization": AUTH_EC})
        r = c.getresponse()
        assert r.status == 200 and r.version == 11
        assert r.getheader("Connection") is None
        assert b"<SnapshotName>ka</SnapshotName>" in r.read()
        assert c.sock is sock  # same TCP connection
    # moto-served requests, an error with a body, HEAD, and a chunked upload on the same connection
    c.request("PUT", "/ka-bucket", headers={"Authorization": AUTH_S3, "Content-Length": "0"})
    r = c.getresponse()
    r.read()
    assert r.status == 200
    c.request("HEAD", "/ka-bucket", headers={"Authorization": AUTH_S3})
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    c.request("GET", "/no-such-bucket-here?list-type=2", headers={"Authorization": AUTH_S3})
    r = c.getresponse()
    assert r.status == 404 and b"NoSuchBucket" in r.read()

    def chunks() -> Any:
        yield b"hello, "
        yield b"chunked world"

    c.request("PUT", "/ka-bucket/obj", body=chunks(), headers={"Authorization": AUTH_S3}, encode_chunked=True)
    r = c.getresponse()
    r.read()
    assert r.status == 200
    c.request("GET", "/ka-bucket/obj", headers={"Authorization": AUTH_S3})
    r = c.getresponse()
    assert r.read() == b"hello, chunked world"
    c.request("HEAD", "/ka-bucket/obj", headers={"Authorization": AUTH_S3})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Length") == "20" and r.read() == b""
    c.request("GET", "/_emulator/health")
    r = c.getresponse()
    assert r.read() == b'{"status": "ok"}'
    assert c.sock is sock
    # the client may still ask for the connection to be closed
    c.request("GET", "/_emulator/health", headers={"Connection": "close"})
    r = c.getresponse()
    r.read()
    assert r.getheader("Connection") == "close"
    c.close()


def test_boto3_put_with_expect_100_continue(emulator: Any, s3: Any) -> None:
    s3.create_bucket(Bucket="expect")
    s3.put_object(Bucket="expect", Key="k", Body=b"x" * 100_000)  # botocore sends Expect: 100-continue
    assert s3.get_object(Bucket="expect", Key="k")["Body"].read() == b"x" * 100_000


# ---------------------------------------------------------------------------
# the data structures themselves (in this process)


def test_call_log_keeps_the_newest_and_slices_by_seq() -> None:
    log = CallLog(limit=5000)
    for seq in range(1, 20_001):
        log.append({"seq": seq})
        assert len(log) == min(seq, 5000)
    assert [c["seq"] for c in log][:2] == [15_001, 15_002]
    assert [c["seq"] for c in log.since(19_997)] == [19_998, 19_999, 20_000]
    assert len(log.since(0)) == 5000 and log.since(-5)[0]["seq"] == 15_001
    assert log.since(20_000) == [] and log.since(99_999) == []
    log.clear()
    assert len(log) == 0 and log.since(0) == []


def test_job_queue_pops_only_due_jobs_in_due_order() -> None:
    q = JobQueue()
    for due in [5.0, 1.0, 3.0, 1.0, 9.0]:
        q.push(Job("copy", due, ACCOUNT, "us-east-1", f"s{due}"))
    assert q.next_due() == 1.0
    assert [j.due for j in q.pop_due(3.0)] == [1.0, 1.0, 3.0]
    assert q.pop_due(4.0) == [] and len(q) == 2 and q.next_due() == 5.0
    assert [j.due for j in q] == [5.0, 9.0]


def test_snapshot_index_follows_every_dict_mutation() -> None:
    d = ecmod.SnapshotIndex({"b": 1, "a": 2})
    d["c"] = 3
    d["a"] = 4  # overwrite: no duplicate name
    d.setdefault("0", 0)
    d.update({"e": 5}, f=6)
    del d["b"]
    assert d.pop("c") == 3 and d.pop("nope", None) is None
    with pytest.raises(KeyError):
        d.pop("nope")
    assert d.sorted_names == sorted(d) == ["0", "a", "e", "f"]
    assert d.names_after("a", 2) == ["e", "f"] and d.names_after(None, 1) == ["0"]
    d |= {"d": 1}
    assert d.sorted_names == sorted(d)
    d.clear()
    assert d.sorted_names == [] and not d


class _Version:
    def __init__(self, name: str) -> None:
        self.name = name

    def dispose(self) -> None:
        pass

    def __repr__(self) -> str:
        return self.name


def test_indexed_key_store_follows_moto_mutations() -> None:
    store = s3index.IndexedKeyStore()
    v1, v2, x, y = _Version("v1"), _Version("v2"), _Version("x"), _Version("y")
    store["b/1"] = v1
    store["b/1"] = v2  # a new version, same name
    store.setlist("a", [x])
    store["c"] = y
    store.pop("c")
    assert store.names_with_prefix("") == ["a", "b/1"]
    assert store.prefix_items("b") == [("b/1", v2)]
    assert store.getlist("b/1") == [v1, v2]
    del store["a"]
    assert store.names_with_prefix("") == ["b/1"]


def test_connection_close_and_http10_end_the_connection(emulator: Any) -> None:
    """Clients that read to EOF (the Rust test harness's control client) still get EOF."""
    import socket  # noqa: PLC0415

    u = urlsplit(emulator.endpoint)
    for request in (
        b"GET /_emulator/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /_emulator/health HTTP/1.0\r\n\r\n",
    ):
        with socket.create_connection((u.hostname, u.port), timeout=5) as s:
            s.sendall(request)
            data = b""
            while True:
                chunk = s.recv(65536)  # times out (fails) if the server kept it open
                if not chunk:
                    break
                data += chunk
        assert data.split(b"\r\n", 1)[0].endswith(b"200 OK")
        assert data.endswith(b'{"status": "ok"}')
