//! The end-to-end test bed: the AWS emulator (moto + our CopySnapshot, a Python child process),
//! the Kubernetes API (the in-memory test bed, or a real cluster when `E2E_KUBECONFIG` is set),
//! and the real operator binary as a child process, configured only by kubeconfig and the AWS
//! environment. The demo (`examples/demo.rs`) uses it too.
#![allow(dead_code)]

#[path = "kube_proxy.rs"]
mod kube_proxy;
#[allow(unused_imports)]
pub use kube_proxy::{KubeProxy, ProxiedRequest};

use aws_sdk_s3::types::{AccessControlPolicy, Grant, Grantee, Permission, Type};
use ecx::api::SnapshotExport;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Config};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";
pub const ELASTICACHE_CANONICAL_ID: &str = "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353";
pub const ACCESS_KEY: &str = "AKIAEXAMPLEOPERATOR1";
pub const SECRET_KEY: &str = "e2e-secret-not-real";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The AWS emulator process.
pub struct Emulator {
    pub endpoint: String,
    child: Child,
}

impl Emulator {
    /// The emulator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start(copy_delay: f64, export_delay: f64) -> Emulator {
        let python = std::env::var("ECX_PYTHON").map(PathBuf::from).unwrap_or_else(|_| repo().join(".venv/bin/python"));
        assert!(python.exists(), "{} is missing: run `make test` (it installs the AWS emulator's virtualenv)", python.display());
        let mut child = Command::new(python)
            .args([
                "-m",
                "ecx_emulator",
                "--port",
                "0",
                "--copy-delay",
                &copy_delay.to_string(),
                "--export-delay",
                &export_delay.to_string(),
            ])
            .env("PYTHONPATH", repo().join("testbed/aws-emulator"))
            .env_remove("MOTO_ACCOUNT_ID")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the AWS emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("emulator prints its address");
        let endpoint = line
            .trim()
            .strip_prefix("ecx-emulator listening on ")
            .unwrap_or_else(|| panic!("unexpected emulator output {line:?}"))
            .to_string();
        Emulator { endpoint, child }
    }

    /// A JSON call to the emulator's control API (`/_emulator/...`).
    pub fn ctl(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        http_json(&self.endpoint, method, &format!("/_emulator{path}"), body)
    }

    pub fn seed_snapshot(&self, name: &str, node_groups: u32) {
        self.ctl("POST", "/snapshots", Some(json!({"name": name, "node_groups": node_groups, "region": REGION})));
    }

    pub fn set_config(&self, config: Value) {
        self.ctl("POST", "/config", Some(config));
    }

    pub fn set_faults(&self, faults: Value) {
        self.ctl("POST", "/faults", Some(faults));
    }

    /// Calls of one ElastiCache action, in order.
    pub fn calls(&self, action: &str) -> Vec<Value> {
        self.ctl("GET", &format!("/calls?action={action}"), None).as_array().cloned().unwrap_or_default()
    }

    /// Calls of one action the emulator has received and not answered yet (held by its latency).
    pub fn in_flight(&self, action: &str) -> Vec<Value> {
        self.ctl("GET", &format!("/calls/in-flight?action={action}"), None).as_array().cloned().unwrap_or_default()
    }

    /// Wait until `n` calls of `action` are in flight (received, not answered), or fail.
    pub async fn wait_in_flight(&self, action: &str, n: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.in_flight(action).len() < n {
            assert!(std::time::Instant::now() < deadline, "{n} {action} calls never reached the emulator");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every logged AWS call (all services and actions), in order.
    pub fn all_calls(&self) -> Vec<Value> {
        self.ctl("GET", "/calls", None).as_array().cloned().unwrap_or_default()
    }

    /// Every call logged after the first `since` ones.
    pub fn calls_since(&self, since: usize) -> Vec<Value> {
        self.all_calls().into_iter().skip(since).collect()
    }

    /// Force a snapshot's status (e.g. one ElastiCache never documented).
    pub fn set_snapshot_status(&self, name: &str, status: &str) {
        self.ctl("POST", &format!("/snapshots/{name}/status"), Some(json!({"status": status})));
    }

    /// CopySnapshot calls for one target name.
    pub fn copy_calls(&self, target: &str) -> Vec<Value> {
        self.calls("CopySnapshot").into_iter().filter(|c| c["params"]["TargetSnapshotName"] == target).collect()
    }

    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An ElastiCache client on the emulator with the operator's credentials (acting as a user
    /// would, or measuring the emulator).
    /// A one-node cache cluster `id` in the emulator (for CreateSnapshot to take from).
    pub async fn create_cache_cluster(&self, id: &str) {
        self.elasticache()
            .create_cache_cluster()
            .cache_cluster_id(id)
            .engine("redis")
            .cache_node_type("cache.t4g.micro")
            .num_cache_nodes(1)
            .send()
            .await
            .expect("create the cache cluster");
    }

    pub fn elasticache(&self) -> aws_sdk_elasticache::Client {
        let creds = aws_sdk_elasticache::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "e2e");
        let config = aws_sdk_elasticache::config::Builder::new()
            .behavior_version(aws_sdk_elasticache::config::BehaviorVersion::latest())
            .region(aws_sdk_elasticache::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(creds)
            .build();
        aws_sdk_elasticache::Client::from_conf(config)
    }

    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "e2e");
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(creds)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 JSON client for the emulator's control API.
pub fn http_json(endpoint: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    serde_json::from_str(&http_call(endpoint, method, path, body)).unwrap_or(Value::Null)
}

/// One plain HTTP/1.1 request; the response body of a 2xx answer (anything else fails the test).
pub fn http_call(endpoint: &str, method: &str, path: &str, body: Option<Value>) -> String {
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, payload) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(head.starts_with("HTTP/1.1 2") || head.starts_with("HTTP/1.0 2"), "{method} {path}: {head}\n{payload}");
    payload.to_string()
}

/// How the bucket grants ElastiCache access.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    /// ACL grants to the ElastiCache canonical ID: READ, WRITE and READ_ACP as chosen.
    Acl {
        read: bool,
        write: bool,
        read_acp: bool,
    },
    /// ACLs disabled (BucketOwnerEnforced) and a bucket policy for the service principal.
    Policy,
    None,
}

impl Access {
    pub const FULL_ACL: Access = Access::Acl { read: true, write: true, read_acp: true };
}

/// Create `bucket` in `region` with the given access for ElastiCache.
pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str, region: &str, access: Access) {
    let mut create = s3.create_bucket().bucket(bucket);
    if region != "us-east-1" {
        let location = aws_sdk_s3::types::CreateBucketConfiguration::builder().location_constraint(region.into()).build();
        create = create.create_bucket_configuration(location);
    }
    create.send().await.unwrap_or_else(|e| panic!("create bucket {bucket}: {e:?}"));
    // As S3 creates buckets today: all four Block Public Access settings on.
    block_public_access(s3, bucket).await;
    grant(s3, bucket, region, access).await;
}

/// Turn on all four Block Public Access settings of a bucket.
pub async fn block_public_access(s3: &aws_sdk_s3::Client, bucket: &str) {
    let block = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    s3.put_public_access_block().bucket(bucket).public_access_block_configuration(block).send().await.expect("put public access block");
}

/// Set ElastiCache's access on an existing bucket (the "fix the bucket" step).
pub async fn grant(s3: &aws_sdk_s3::Client, bucket: &str, region: &str, access: Access) {
    match access {
        Access::Acl { read, write, read_acp } => {
            let acl = s3.get_bucket_acl().bucket(bucket).send().await.expect("get bucket acl");
            let owner = acl.owner().cloned().expect("bucket owner");
            let mut policy = AccessControlPolicy::builder().owner(owner.clone());
            let owner_grantee = Grantee::builder().r#type(Type::CanonicalUser).id(owner.id().unwrap_or_default()).build().unwrap();
            policy = policy.grants(Grant::builder().grantee(owner_grantee).permission(Permission::FullControl).build());
            for (wanted, permission) in [(read, Permission::Read), (write, Permission::Write), (read_acp, Permission::ReadAcp)] {
                if wanted {
                    let grantee = Grantee::builder().r#type(Type::CanonicalUser).id(ELASTICACHE_CANONICAL_ID).build().unwrap();
                    policy = policy.grants(Grant::builder().grantee(grantee).permission(permission).build());
                }
            }
            s3.put_bucket_acl().bucket(bucket).access_control_policy(policy.build()).send().await.expect("put bucket acl");
        }
        Access::Policy => {
            let controls = aws_sdk_s3::types::OwnershipControls::builder()
                .rules(
                    aws_sdk_s3::types::OwnershipControlsRule::builder()
                        .object_ownership(aws_sdk_s3::types::ObjectOwnership::BucketOwnerEnforced)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap();
            s3.put_bucket_ownership_controls().bucket(bucket).ownership_controls(controls).send().await.expect("ownership controls");
            let policy = json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "ElastiCacheSnapshotExport",
                    "Effect": "Allow",
                    "Principal": {"Service": format!("{region}.elasticache-snapshot.amazonaws.com")},
                    "Action": ["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:GetBucketAcl", "s3:ListMultipartUploadParts", "s3:ListBucketMultipartUploads", "s3:GetBucketLocation"],
                    "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")]
                }]
            });
            s3.put_bucket_policy().bucket(bucket).policy(policy.to_string()).send().await.expect("put bucket policy");
        }
        Access::None => {}
    }
}

/// Keys in a bucket.
pub async fn bucket_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = s3.list_objects_v2().bucket(bucket).send().await.expect("list objects");
    out.contents().iter().filter_map(|o| o.key().map(str::to_string)).collect()
}

/// The Kubernetes side: the in-memory test bed API, or a real cluster from `E2E_KUBECONFIG`.
pub struct Cluster {
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub testbed: Option<kube_testbed::TestApiServer>,
    real: bool,
}

impl Cluster {
    pub async fn start(dir: &Path) -> Cluster {
        Self::start_with(dir, kube_testbed::Options::default()).await
    }

    /// As [`Cluster::start`], with test bed options (e.g. a short watch history, so that a
    /// re-watch after a dropped stream is answered `410 Gone` and the watcher re-lists). A real
    /// cluster (`E2E_KUBECONFIG`) ignores them.
    pub async fn start_with(dir: &Path, options: kube_testbed::Options) -> Cluster {
        if let Ok(path) = std::env::var("E2E_KUBECONFIG") {
            return Self::real(PathBuf::from(path)).await;
        }
        let testbed = kube_testbed::TestApiServer::start(options).await.expect("start the test bed API");
        let kubeconfig = dir.join("kubeconfig");
        testbed.write_kubeconfig(&kubeconfig, "default").unwrap();
        let client = client_for(&kubeconfig).await;
        install_crds(&client).await;
        let namespace = "e2e".to_string();
        create_namespace(&client, &namespace).await;
        Cluster { client, kubeconfig, namespace, testbed: Some(testbed), real: false }
    }

    /// A real API server: every CRD installed (idempotently: the tests of one run share the
    /// server and start in parallel), and a fresh namespace for this test. Nothing relies on
    /// namespace deletion or garbage collection (the kit in `shared/k8s` has neither).
    async fn real(kubeconfig: PathBuf) -> Cluster {
        let client = client_for(&kubeconfig).await;
        install_crds(&client).await;
        let namespace = format!("ecx-e2e-{:08x}", rand::random::<u32>());
        create_namespace(&client, &namespace).await;
        Cluster { client, kubeconfig, namespace, testbed: None, real: true }
    }

    /// A real API server (`E2E_KUBECONFIG`), not the in-memory test bed.
    pub fn is_real(&self) -> bool {
        self.real
    }

    /// Whether this test may change what every test on the server shares (the CRDs): always on
    /// the test bed (one server per test); on a real server only when the tests run one at a time
    /// with `E2E_EXCLUSIVE=1` (as `.ci/run` runs those scenarios after the parallel run).
    pub fn may_change_crds(&self) -> bool {
        !self.real || std::env::var("E2E_EXCLUSIVE").is_ok_and(|v| v == "1")
    }

    /// Replace the CRD `name` by `edit` applied to its current form (e.g. without its rules).
    /// Only for a test that [`Cluster::may_change_crds`]; [`Cluster::restore_crds`] undoes it.
    pub async fn edit_crd(&self, name: &str, edit: impl Fn(&mut Value)) {
        assert!(self.may_change_crds(), "only a test that may change the CRDs edits them");
        let crds: Api<Crd> = Api::all(self.client.clone());
        let mut crd = serde_json::to_value(crds.get(name).await.unwrap_or_else(|e| panic!("get CRD {name}: {e}"))).unwrap();
        edit(&mut crd);
        let crd: Crd = serde_json::from_value(crd).expect("an edited CRD");
        crds.replace(name, &PostParams::default(), &crd).await.unwrap_or_else(|e| panic!("replace CRD {name}: {e}"));
    }

    /// Put every CRD back as the operator prints it (after [`Cluster::edit_crd`]).
    pub async fn restore_crds(&self) {
        install_crds(&self.client).await;
    }

    /// Create `obj`, trying again for up to 15 s while it is refused as invalid: a real server
    /// enforces a CRD's new schema a moment after the CRD changed.
    pub async fn create_once_schema_allows<K>(&self, api: &Api<K>, obj: &K) -> K
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match api.create(&PostParams::default(), obj).await {
                Ok(created) => return created,
                Err(kube::Error::Api(e)) if e.code == 422 && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await
                }
                Err(e) => panic!("create {obj:?}: {e}"),
            }
        }
    }

    /// A fault-injecting, recording proxy in front of this API server (either kind); start an
    /// operator through it with [`Bed::start_operator_through`].
    pub async fn kube_proxy(&self) -> KubeProxy {
        KubeProxy::start(self.client.clone()).await
    }

    pub fn is_testbed(&self) -> bool {
        !self.real
    }

    pub fn exports(&self) -> Api<SnapshotExport> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn apply(&self, name: &str, spec: Value) -> SnapshotExport {
        let obj: SnapshotExport = serde_json::from_value(json!({
            "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
            "metadata": {"name": name, "namespace": self.namespace}, "spec": spec
        }))
        .expect("a SnapshotExport");
        self.exports().create(&PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create {name}: {e}"))
    }

    pub async fn get(&self, name: &str) -> SnapshotExport {
        self.exports().get(name).await.unwrap_or_else(|e| panic!("get {name}: {e}"))
    }

    pub async fn delete(&self, name: &str) {
        self.exports().delete(name, &DeleteParams::default()).await.unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }

    /// Events about one object, oldest first.
    pub async fn events(&self, name: &str) -> Vec<Event> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.namespace);
        let mut list: Vec<Event> = events.list(&ListParams::default()).await.expect("list events").items;
        list.retain(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name));
        list.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        list
    }

    /// Wait for an Event of `type_` (Normal or Warning) and `reason` about `name`: Events are
    /// published just after the status write that a test may already have seen.
    pub async fn wait_event(&self, name: &str, type_: &str, reason: &str) -> Event {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.events(name).await;
            if let Some(found) = events.iter().find(|e| e.type_.as_deref() == Some(type_) && e.reason.as_deref() == Some(reason)) {
                return found.clone();
            }
            let seen: Vec<_> = events.iter().map(|e| (e.type_.clone(), e.reason.clone())).collect();
            assert!(Instant::now() < deadline, "{name}: no {type_} Event {reason} within 30 s; seen {seen:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Poll `name` until `done` holds, or fail with its last status and the operator's log.
    pub async fn wait_for(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        logs: &[PathBuf],
        done: impl Fn(&SnapshotExport) -> bool,
    ) -> SnapshotExport {
        let deadline = Instant::now() + timeout;
        loop {
            let obj = self.exports().get_opt(name).await.ok().flatten();
            if let Some(obj) = &obj {
                if done(obj) {
                    return obj.clone();
                }
            }
            if Instant::now() > deadline {
                let tail: String = logs
                    .iter()
                    .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                    .map(|s| s.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n"))
                    .collect::<Vec<_>>()
                    .join("\n---\n");
                panic!(
                    "{name}: not {what} after {timeout:?}; status: {}\noperator log tail:\n{tail}",
                    serde_json::to_string_pretty(&obj.map(|o| o.status)).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn client_for(kubeconfig: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig to config");
    Client::try_from(config).expect("a kube client")
}

/// Every CustomResourceDefinition in `config/crd/` (the copies `make crd` generates from the Rust
/// types, kept fresh by a test), so that every resource the operator serves is installed on
/// either API server, whatever its kind.
pub fn operator_crds() -> Vec<Crd> {
    let dir = repo().join("config/crd");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut crds = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let doc = <Value as serde::Deserialize>::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if doc["kind"] == "CustomResourceDefinition" {
                crds.push(serde_json::from_value(doc).unwrap_or_else(|e| panic!("{}: not a CRD: {e}", file.display())));
            }
        }
    }
    assert!(!crds.is_empty(), "no CustomResourceDefinition in {}", dir.display());
    crds
}

type Crd = k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Create each of [`operator_crds`], or replace it when it exists (another test of the run, or
/// an older install, got there first), then wait until the server serves its objects. Safe to
/// call from tests running in parallel.
pub async fn install_crds(client: &Client) {
    let crds: Api<Crd> = Api::all(client.clone());
    for crd in operator_crds() {
        let name = crd.metadata.name.clone().expect("a named CRD");
        for attempt in 0.. {
            let outcome = match crds.create(&PostParams::default(), &crd).await {
                Err(kube::Error::Api(e)) if e.code == 409 => match crds.get(&name).await {
                    Ok(current) if current.spec == crd.spec => Ok(()),
                    Ok(current) => {
                        let mut updated = crd.clone();
                        updated.metadata.resource_version = current.metadata.resource_version;
                        crds.replace(&name, &PostParams::default(), &updated).await.map(drop)
                    }
                    Err(e) => Err(e),
                },
                other => other.map(drop),
            };
            match outcome {
                Ok(()) => break,
                // A conflict with a parallel install: read again and retry.
                Err(kube::Error::Api(e)) if e.code == 409 && attempt < 20 => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => panic!("install the CRD {name}: {e}"),
            }
        }
        wait_served(client, &crd).await;
    }
}

/// Wait until the API server lists the CRD's objects (a real server serves a new CRD only once
/// it is Established, a moment after it was created).
async fn wait_served(client: &Client, crd: &Crd) {
    let version = crd.spec.versions.iter().find(|v| v.served).expect("a served version");
    let resource = kube::api::ApiResource {
        group: crd.spec.group.clone(),
        version: version.name.clone(),
        api_version: format!("{}/{}", crd.spec.group, version.name),
        kind: crd.spec.names.kind.clone(),
        plural: crd.spec.names.plural.clone(),
    };
    let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &resource);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => panic!("{}: not served 30 s after install: {e}", resource.plural),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Say, in the test's output, that a scenario returns early on a real API server and why (it
/// needs something only the in-memory test bed offers). `make e2e` with `--nocapture` and
/// `.ci/run` show these lines.
pub fn skip_on_real_server(test: &str, why: &str) {
    eprintln!("[real-server] {test}: returns early on a real API server: {why}");
}

/// Create SnapshotExport `name` with `spec` in `namespace` (not the bed's own).
pub async fn apply_in(bed: &Bed, namespace: &str, name: &str, spec: serde_json::Value) {
    let obj: ecx::api::SnapshotExport = serde_json::from_value(serde_json::json!({
        "apiVersion": "elasticache-export.io/v1alpha1", "kind": "SnapshotExport",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec
    }))
    .unwrap();
    let api: kube::Api<ecx::api::SnapshotExport> = kube::Api::namespaced(bed.cluster.client.clone(), namespace);
    api.create(&kube::api::PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("create {namespace}/{name}: {e}"));
}

pub async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// The condition `type_` of an object, as (status, reason, message).
pub fn condition(obj: &SnapshotExport, type_: &str) -> Option<(String, String, String)> {
    obj.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_).map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn is_true(obj: &SnapshotExport, type_: &str) -> bool {
    condition(obj, type_).is_some_and(|c| c.0 == "True")
}

/// The export policy every scenario runs with unless it starts its operator with
/// [`Bed::start_operator_with_policy`]: any namespace may export to any bucket (without a rule
/// the operator refuses every S3 export).
pub const TEST_POLICY: &[&str] = &["--allow-export", "*=*"];

/// Fast timing for tests: poll every 0.3-2 s, retry stalled objects every second.
pub const TEST_TIMING: &[&str] = &[
    "--metrics-addr",
    "127.0.0.1:0",
    "--poll-min-seconds",
    "0.3",
    "--poll-max-seconds",
    "2",
    "--error-backoff-min-seconds",
    "0.2",
    "--error-backoff-max-seconds",
    "2",
    "--stalled-retry-seconds",
    "1",
];

/// The operator binary: Cargo names it for integration tests; elsewhere (the demo) it is the
/// one `cargo build` left in the target directory, or `ECX_OPERATOR_BIN`.
pub fn operator_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_elasticache-export-operator") {
        return PathBuf::from(path);
    }
    std::env::var("ECX_OPERATOR_BIN").map(PathBuf::from).unwrap_or_else(|_| {
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo().join("target"));
        target.join("debug/elasticache-export-operator")
    })
}

/// One running operator process.
pub struct Operator {
    child: Child,
    pub log: PathBuf,
}

impl Operator {
    /// Start the operator binary; `args` follow `run --namespaces <ns> --s3-path-style`.
    pub fn start(cluster: &Cluster, emulator: &Emulator, dir: &Path, n: usize, args: &[&str]) -> Operator {
        Self::start_with(cluster, emulator, dir, n, args, &cluster.kubeconfig, &[])
    }

    /// As [`Operator::start`], talking to the API server `kubeconfig` names (e.g. a [`KubeProxy`]).
    pub fn start_with_kubeconfig(
        cluster: &Cluster,
        emulator: &Emulator,
        dir: &Path,
        n: usize,
        args: &[&str],
        kubeconfig: &Path,
    ) -> Operator {
        Self::start_with(cluster, emulator, dir, n, args, kubeconfig, &[])
    }

    /// As [`Operator::start`], with extra environment (e.g. the schedules' test clock).
    pub fn start_env(cluster: &Cluster, emulator: &Emulator, dir: &Path, n: usize, args: &[&str], env: &[(&str, String)]) -> Operator {
        Self::start_with(cluster, emulator, dir, n, args, &cluster.kubeconfig, env)
    }

    /// The operator against the API server `kubeconfig` names, with extra environment.
    fn start_with(
        cluster: &Cluster,
        emulator: &Emulator,
        dir: &Path,
        n: usize,
        args: &[&str],
        kubeconfig: &Path,
        env: &[(&str, String)],
    ) -> Operator {
        let log = dir.join(format!("operator-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(operator_binary());
        cmd.args(["run", "--namespaces", &cluster.namespace, "--s3-path-style"])
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig)
            // Tests read the debug log; the benchmark measures the operator as shipped (info).
            .env("RUST_LOG", std::env::var("ECX_OPERATOR_LOG").unwrap_or_else(|_| "info,ecx=debug".into()))
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in emulator.aws_env() {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Operator { child: cmd.spawn().expect("start the operator"), log }
    }

    /// The operator's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has ended (a replica that lost its lease exits on purpose).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: no graceful shutdown, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Everything one scenario needs.
pub struct Bed {
    pub emulator: Emulator,
    pub cluster: Cluster,
    pub s3: aws_sdk_s3::Client,
    pub operators: Vec<Operator>,
    pub dir: tempfile::TempDir,
}

impl Bed {
    /// Emulator (copy and export complete after ~1 s), cluster, one operator.
    pub async fn start() -> Bed {
        let mut bed = Self::without_operator().await;
        bed.start_operator(&[]);
        bed
    }

    pub async fn without_operator() -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let emulator = Emulator::start(1.0, 1.0);
        let cluster = Cluster::start(dir.path()).await;
        let s3 = emulator.s3().await;
        Bed { emulator, cluster, s3, operators: vec![], dir }
    }

    /// Emulator with the given copy and export delays (seconds), and a cluster started with
    /// test bed `options`; no operator yet.
    pub async fn with_options(copy_delay: f64, export_delay: f64, options: kube_testbed::Options) -> Bed {
        let dir = tempfile::tempdir().unwrap();
        let emulator = Emulator::start(copy_delay, export_delay);
        let cluster = Cluster::start_with(dir.path(), options).await;
        let s3 = emulator.s3().await;
        Bed { emulator, cluster, s3, operators: vec![], dir }
    }

    /// The test bed's fault controls; `None` on a real cluster.
    pub fn kube_faults(&self) -> Option<kube_testbed::Faults> {
        self.cluster.testbed.as_ref().map(|t| t.faults())
    }

    /// Every operator log so far, concatenated.
    pub fn log_text(&self) -> String {
        self.logs().iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect::<Vec<_>>().join("\n")
    }

    /// The laundering scenario's setting (docs/safe-exports.md): three team namespaces beside the
    /// bed's own (`<ns>-<team>-b`, `-c`, `-z`), bucket `<bucket>-b` and `<bucket>-c`, and an
    /// operator watching all four under a policy of two rules: namespace b may export to its
    /// bucket under `rule_b`, namespace c to its bucket under `rule_c` (z has no rule).
    pub async fn start_three_teams(&mut self, team: &str, bucket: &str, rule_b: &str, rule_c: &str) -> [String; 3] {
        let base = self.cluster.namespace.clone();
        let [b, c, z] = ["b", "c", "z"].map(|t| format!("{base}-{team}-{t}"));
        for ns in [&b, &c, &z] {
            create_namespace(&self.cluster.client, ns).await;
        }
        for t in ["b", "c"] {
            create_bucket(&self.s3, &format!("{bucket}-{t}"), REGION, Access::FULL_ACL).await;
        }
        let policy_file = self.dir.path().join("export-policy.yaml");
        let policy = format!(
            "rules:\n  - namespaces: [\"{b}\"]\n    buckets: [{bucket}-b]\n    {rule_b}\n  - namespaces: [\"{c}\"]\n    buckets: [{bucket}-c]\n    {rule_c}\n"
        );
        std::fs::write(&policy_file, policy).unwrap();
        let watched = [base.as_str(), &b, &c, &z].join(",");
        self.start_operator_with_policy(&["--namespaces", &watched, "--export-policy-file", policy_file.to_str().unwrap()]);
        [b, c, z]
    }

    /// Start an operator without [`TEST_POLICY`]: `extra` carries the export policy flags (none:
    /// every S3 export is refused).
    pub fn start_operator_with_policy(&mut self, extra: &[&str]) {
        let n = self.operators.len();
        let args: Vec<&str> = TEST_TIMING.iter().chain(extra).copied().collect();
        self.operators.push(Operator::start(&self.cluster, &self.emulator, self.dir.path(), n, &args));
    }

    /// As [`Bed::start_operator`], with extra environment for the operator.
    pub fn start_operator_env(&mut self, extra: &[&str], env: &[(&str, String)]) {
        let n = self.operators.len();
        let args: Vec<&str> = TEST_TIMING.iter().chain(TEST_POLICY).chain(extra).copied().collect();
        self.operators.push(Operator::start_env(&self.cluster, &self.emulator, self.dir.path(), n, &args, env));
    }

    pub fn start_operator(&mut self, extra: &[&str]) {
        let n = self.operators.len();
        let args: Vec<&str> = TEST_TIMING.iter().chain(TEST_POLICY).chain(extra).copied().collect();
        self.operators.push(Operator::start(&self.cluster, &self.emulator, self.dir.path(), n, &args));
    }

    /// Start an operator (with [`TEST_POLICY`]) that talks to the API server through `proxy`.
    pub fn start_operator_through(&mut self, proxy: &KubeProxy, extra: &[&str]) {
        let n = self.operators.len();
        let kubeconfig = self.dir.path().join(format!("kubeconfig-proxy-{n}"));
        std::fs::write(&kubeconfig, proxy.kubeconfig_yaml(&self.cluster.namespace)).unwrap();
        let args: Vec<&str> = TEST_TIMING.iter().chain(TEST_POLICY).chain(extra).copied().collect();
        self.operators.push(Operator::start_with_kubeconfig(&self.cluster, &self.emulator, self.dir.path(), n, &args, &kubeconfig));
    }

    /// The latest operator's `/metrics` page (its address is in its log: it binds port 0).
    pub fn metrics(&self) -> String {
        let log = std::fs::read_to_string(&self.operators.last().expect("an operator").log).unwrap_or_default();
        let line = log.lines().find(|l| l.contains("serving /healthz")).expect("the operator logs its metrics address");
        // The tests bind 127.0.0.1:0; the log (text, maybe coloured) names the port chosen.
        let (_, rest) = line.split_once("127.0.0.1:").expect("the bound address in the log line");
        let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
        http_call(&format!("127.0.0.1:{port}"), "GET", "/metrics", None)
    }

    pub fn logs(&self) -> Vec<PathBuf> {
        self.operators.iter().map(|o| o.log.clone()).collect()
    }

    pub async fn wait_for(&self, name: &str, what: &str, secs: u64, done: impl Fn(&SnapshotExport) -> bool) -> SnapshotExport {
        self.cluster.wait_for(name, what, Duration::from_secs(secs), &self.logs(), done).await
    }

    pub async fn wait_ready(&self, name: &str) -> SnapshotExport {
        self.wait_for(name, "Ready", 60, |o| is_true(o, "Ready")).await
    }

    /// Wait until the object is gone (its finalizer, if any, removed).
    pub async fn wait_gone(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.cluster.exports().get_opt(name).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{name} was never deleted (left Terminating)");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_stalled(&self, name: &str, reason: &str) -> SnapshotExport {
        self.wait_for(name, &format!("Stalled with {reason}"), 60, |o| {
            condition(o, "Stalled").is_some_and(|c| c.0 == "True" && c.1 == reason)
        })
        .await
    }
}

/// Who holds the Lease `name` in `namespace` (`None`: released, or never taken).
pub async fn lease_holder(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    leases.get_opt(name).await.expect("get the Lease")?.spec?.holder_identity
}
