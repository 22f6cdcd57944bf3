use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use kube_testbed::{Options, TestApiServer};
use serde_json::{json, Value};

pub struct Bed {
    pub server: TestApiServer,
    pub client: Client,
    _dir: tempfile::TempDir,
}

pub async fn start_with(opts: Options) -> Bed {
    let server = TestApiServer::start(opts).await.expect("start");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path, "default").expect("write kubeconfig");
    let kc = Kubeconfig::read_from(&path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    let client = Client::try_from(config).expect("client");
    Bed { server, client, _dir: dir }
}

/// A client for the server with kube's default retry of 429/503/504 switched off.
pub async fn client_without_retry(bed: &Bed) -> Client {
    let kc = Kubeconfig::from_yaml(&bed.server.kubeconfig_yaml("default")).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("config");
    config.default_retry = false;
    Client::try_from(config).expect("client")
}

pub async fn start() -> Bed {
    start_with(Options::default()).await
}

pub fn api_err(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.test"},
        "spec": {
            "group": "example.test",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["bucket"],
                            "properties": {
                                "bucket": {"type": "string", "minLength": 3,
                                    "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "bucket is immutable"}]},
                                "mode": {"type": "string", "enum": ["Fast", "Slow"], "default": "Fast"},
                                "replicas": {"type": "integer", "minimum": 0},
                                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                                "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                                    "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "v": {"type": "integer"}}}},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                            },
                            "x-kubernetes-validations": [
                                {"rule": "!has(self.replicas) || self.replicas <= 10", "message": "replicas must be at most 10", "fieldPath": ".replicas"}
                            ]
                        },
                        "status": {"type": "object", "properties": {
                            "phase": {"type": "string"},
                            "observedGeneration": {"type": "integer"}
                        }}
                    }
                }}
            }]
        }
    })
}

pub fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.test", "v1", "Widget"), "widgets")
}

pub async fn install_widget_crd(client: &Client) -> Value {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(widget_crd()).unwrap();
    let created = crds.create(&PostParams::default(), &crd).await.expect("create CRD");
    serde_json::to_value(created).unwrap()
}

pub fn widgets(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &widget_resource())
}

pub fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "example.test/v1", "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec
    }))
    .unwrap()
}

pub fn lease(name: &str, holder: &str) -> k8s_openapi::api::coordination::v1::Lease {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 10}
    }))
    .unwrap()
}

/// GET a raw path through the kube client (for `/_testbed` and discovery).
pub async fn raw(client: &Client, method: &str, path: &str, body: Option<Value>) -> String {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default())
        .unwrap();
    client.request_text(req).await.expect("raw request")
}
