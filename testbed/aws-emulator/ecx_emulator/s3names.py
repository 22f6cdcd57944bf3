"""Best-effort S3 operation names (as in the S3 API reference) from a request."""

from __future__ import annotations

from urllib.parse import unquote

# bucket sub-resource -> (GET, PUT, DELETE, POST) operation name suffixes
BUCKET_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None]] = {
    "acl": ("GetBucketAcl", "PutBucketAcl", None),
    "policy": ("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    "policyStatus": ("GetBucketPolicyStatus", None, None),
    "location": ("GetBucketLocation", None, None),
    "publicAccessBlock": ("GetPublicAccessBlock", "PutPublicAccessBlock", "DeletePublicAccessBlock"),
    "ownershipControls": (
        "GetBucketOwnershipControls",
        "PutBucketOwnershipControls",
        "DeleteBucketOwnershipControls",
    ),
    "versioning": ("GetBucketVersioning", "PutBucketVersioning", None),
    "tagging": ("GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"),
    "encryption": ("GetBucketEncryption", "PutBucketEncryption", "DeleteBucketEncryption"),
    "lifecycle": (
        "GetBucketLifecycleConfiguration",
        "PutBucketLifecycleConfiguration",
        "DeleteBucketLifecycle",
    ),
    "cors": ("GetBucketCors", "PutBucketCors", "DeleteBucketCors"),
    "website": ("GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"),
    "logging": ("GetBucketLogging", "PutBucketLogging", None),
    "notification": (
        "GetBucketNotificationConfiguration",
        "PutBucketNotificationConfiguration",
        None,
    ),
    "replication": ("GetBucketReplication", "PutBucketReplication", "DeleteBucketReplication"),
    "object-lock": ("GetObjectLockConfiguration", "PutObjectLockConfiguration", None),
    "accelerate": ("GetBucketAccelerateConfiguration", "PutBucketAccelerateConfiguration", None),
    "requestPayment": ("GetBucketRequestPayment", "PutBucketRequestPayment", None),
    "uploads": ("ListMultipartUploads", None, None),
    "versions": ("ListObjectVersions", None, None),
}

OBJECT_SUBRESOURCES: dict[str, tuple[str | None, str | None, str | None]] = {
    "acl": ("GetObjectAcl", "PutObjectAcl", None),
    "tagging": ("GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging"),
    "retention": ("GetObjectRetention", "PutObjectRetention", None),
    "legal-hold": ("GetObjectLegalHold", "PutObjectLegalHold", None),
    "attributes": ("GetObjectAttributes", None, None),
}

_METHOD_INDEX = {"GET": 0, "HEAD": 0, "PUT": 1, "DELETE": 2}


def split_bucket_key(path: str, host: str) -> tuple[str | None, str | None]:
    """Path-style first; virtual-hosted style if the Host names a bucket."""
    path = unquote(path or "/")
    host = (host or "").split(":")[0]
    vhost_bucket = None
    for marker in (".s3.", ".s3-", ".localhost"):
        if marker in host:
            vhost_bucket = host.split(marker)[0] or None
            break
    if vhost_bucket:
        key = path.lstrip("/") or None
        return vhost_bucket, key
    parts = path.lstrip("/").split("/", 1)
    bucket = parts[0] or None
    key = parts[1] if len(parts) > 1 and parts[1] != "" else None
    return bucket, key


def s3_operation(method: str, path: str, host: str, query: dict[str, str], headers: dict[str, str]) -> tuple[str, str | None, str | None]:
    """(operation, bucket, key)"""
    method = method.upper()
    bucket, key = split_bucket_key(path, host)
    if bucket is None:
        return ("ListBuckets" if method == "GET" else f"{method}Service"), None, None
    if key is None:
        if method == "POST" and "delete" in query:
            return "DeleteObjects", bucket, None
        for sub, names in BUCKET_SUBRESOURCES.items():
            if sub in query:
                i = _METHOD_INDEX.get(method)
                name = names[i] if i is not None else None
                if name:
                    return name, bucket, None
        if method == "GET":
            return ("ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"), bucket, None
        return {
            "PUT": "CreateBucket",
            "DELETE": "DeleteBucket",
            "HEAD": "HeadBucket",
        }.get(method, f"{method}Bucket"), bucket, None
    # object level
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload", bucket, key
        if "uploadId" in query:
            return "CompleteMultipartUpload", bucket, key
        if "restore" in query:
            return "RestoreObject", bucket, key
        return "PostObject", bucket, key
    for sub, names in OBJECT_SUBRESOURCES.items():
        if sub in query:
            i = _METHOD_INDEX.get(method)
            name = names[i] if i is not None else None
            if name:
                return name, bucket, key
    lower = {k.lower(): v for k, v in headers.items()}
    if method == "PUT":
        if "uploadId" in query:
            return ("UploadPartCopy" if "x-amz-copy-source" in lower else "UploadPart"), bucket, key
        if "x-amz-copy-source" in lower:
            return "CopyObject", bucket, key
        return "PutObject", bucket, key
    if method == "GET":
        if "uploadId" in query:
            return "ListParts", bucket, key
        return "GetObject", bucket, key
    if method == "HEAD":
        return "HeadObject", bucket, key
    if method == "DELETE":
        if "uploadId" in query:
            return "AbortMultipartUpload", bucket, key
        return "DeleteObject", bucket, key
    return f"{method}Object", bucket, key
