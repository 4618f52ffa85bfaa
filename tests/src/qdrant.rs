//! Qdrant for the tests: the server at `QDRANT_URL` when it is set, else a scripted one in this
//! process. No Qdrant server can be installed on this machine, so the scripted one speaks Qdrant's
//! documented gRPC protocol (the service definitions generated in `qdrant-client`) for the calls
//! Kefu makes — health check; list, create, delete and "exists" of collections; field indexes;
//! upsert, delete by filter, count and nearest-neighbour query of points with filters (`must` /
//! `should` / `must_not`, integer and keyword matches, `has_id`) — searching by brute force over
//! normalised vectors (cosine). Every other call answers `UNIMPLEMENTED`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::qdrant_server::{Qdrant as QdrantService, QdrantServer};
use qdrant_client::qdrant::{self as q, condition, point_id, r#match, value, vectors_config};
use tonic::{Request, Response, Status};

/// The Qdrant a test runs against.
pub struct TestQdrant {
    /// gRPC URL to give `--qdrant-url`.
    pub url: String,
    /// The scripted server's state, when that is the one in use.
    pub scripted: Option<Arc<State>>,
}

impl TestQdrant {
    /// `QDRANT_URL` when set; otherwise the scripted server, started on a loopback port for the
    /// rest of the process. Says which on stderr.
    pub fn get() -> Self {
        if let Ok(url) = std::env::var("QDRANT_URL") {
            eprintln!("Qdrant: the server at QDRANT_URL={url}");
            return Self {
                url,
                scripted: None,
            };
        }
        let state = Arc::new(State::default());
        let addr = serve(Arc::clone(&state));
        eprintln!(
            "Qdrant: QDRANT_URL is not set, so these tests run against the scripted Qdrant gRPC \
             server in this process at {addr} (set QDRANT_URL to run them against a real one)"
        );
        Self {
            url: format!("http://{addr}"),
            scripted: Some(state),
        }
    }
}

/// Starts the scripted server on its own thread and runtime; returns its address.
fn serve(state: Arc<State>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let incoming =
                tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
                    .expect("bind the scripted Qdrant");
            tx.send(incoming.local_addr().expect("address"))
                .expect("send address");
            let service = Scripted(state);
            tonic::transport::Server::builder()
                .add_service(QdrantServer::new(service.clone()))
                .add_service(CollectionsServer::new(service.clone()))
                .add_service(PointsServer::new(service))
                .serve_with_incoming(incoming)
                .await
                .expect("scripted Qdrant");
        });
    });
    rx.recv().expect("the scripted Qdrant started")
}

/// One stored point: its normalised vector and payload.
struct Point {
    vector: Vec<f32>,
    payload: HashMap<String, q::Value>,
}

/// A collection: its dimension and points by id.
struct Collection {
    dim: usize,
    points: BTreeMap<u64, Point>,
}

/// What the scripted server holds, and what tests may look at.
#[derive(Default)]
pub struct State {
    collections: Mutex<HashMap<String, Collection>>,
    /// The most points one upsert request carried.
    largest_upsert: Mutex<usize>,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Collection>> {
        self.collections.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The collections, by name, with their point counts.
    pub fn collections(&self) -> BTreeMap<String, usize> {
        self.lock()
            .iter()
            .map(|(n, c)| (n.clone(), c.points.len()))
            .collect()
    }

    /// The most points one upsert request carried so far.
    pub fn largest_upsert(&self) -> usize {
        *self
            .largest_upsert
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
struct Scripted(Arc<State>);

fn not_found(name: &str) -> Status {
    Status::not_found(format!("Collection `{name}` doesn't exist!"))
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

#[allow(deprecated)]
fn dense(v: &q::Vector) -> Option<Vec<f32>> {
    match &v.vector {
        Some(q::vector::Vector::Dense(d)) => Some(d.data.clone()),
        None if !v.data.is_empty() => Some(v.data.clone()),
        _ => None,
    }
}

fn point_id(id: &Option<q::PointId>) -> Result<u64, Status> {
    match id.as_ref().and_then(|p| p.point_id_options.as_ref()) {
        Some(point_id::PointIdOptions::Num(n)) => Ok(*n),
        _ => Err(Status::invalid_argument(
            "only numeric point ids are scripted",
        )),
    }
}

/// The payload's values under `key`, a list flattened.
fn values<'a>(payload: &'a HashMap<String, q::Value>, key: &str) -> Vec<&'a value::Kind> {
    match payload.get(key).and_then(|v| v.kind.as_ref()) {
        Some(value::Kind::ListValue(l)) => {
            l.values.iter().filter_map(|v| v.kind.as_ref()).collect()
        }
        Some(k) => vec![k],
        None => Vec::new(),
    }
}

fn field_matches(
    c: &q::FieldCondition,
    payload: &HashMap<String, q::Value>,
) -> Result<bool, Status> {
    let found = values(payload, &c.key);
    let int = |i: i64| {
        found
            .iter()
            .any(|k| matches!(k, value::Kind::IntegerValue(x) if *x == i))
    };
    let kw = |s: &str| {
        found
            .iter()
            .any(|k| matches!(k, value::Kind::StringValue(x) if x == s))
    };
    match c.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
        Some(r#match::MatchValue::Integer(i)) => Ok(int(*i)),
        Some(r#match::MatchValue::Integers(l)) => Ok(l.integers.iter().any(|i| int(*i))),
        Some(r#match::MatchValue::Keyword(s)) => Ok(kw(s)),
        Some(r#match::MatchValue::Keywords(l)) => Ok(l.strings.iter().any(|s| kw(s))),
        _ => Err(Status::invalid_argument(
            "only integer and keyword matches are scripted",
        )),
    }
}

fn condition_matches(c: &q::Condition, id: u64, p: &Point) -> Result<bool, Status> {
    match &c.condition_one_of {
        Some(condition::ConditionOneOf::Field(f)) => field_matches(f, &p.payload),
        Some(condition::ConditionOneOf::Filter(f)) => filter_matches(Some(f), id, p),
        Some(condition::ConditionOneOf::HasId(h)) => {
            let mut any = false;
            for wanted in &h.has_id {
                any |= point_id(&Some(wanted.clone()))? == id;
            }
            Ok(any)
        }
        _ => Err(Status::invalid_argument(
            "only field, filter and has_id conditions are scripted",
        )),
    }
}

fn filter_matches(f: Option<&q::Filter>, id: u64, p: &Point) -> Result<bool, Status> {
    let Some(f) = f else {
        return Ok(true);
    };
    for c in &f.must {
        if !condition_matches(c, id, p)? {
            return Ok(false);
        }
    }
    for c in &f.must_not {
        if condition_matches(c, id, p)? {
            return Ok(false);
        }
    }
    if !f.should.is_empty() {
        let mut any = false;
        for c in &f.should {
            any |= condition_matches(c, id, p)?;
        }
        return Ok(any);
    }
    Ok(true)
}

fn operation_done() -> Response<q::PointsOperationResponse> {
    Response::new(q::PointsOperationResponse {
        result: Some(q::UpdateResult {
            operation_id: Some(0),
            status: q::UpdateStatus::Completed as i32,
        }),
        ..Default::default()
    })
}

fn collection_done() -> Response<q::CollectionOperationResponse> {
    Response::new(q::CollectionOperationResponse {
        result: true,
        ..Default::default()
    })
}

/// Methods Kefu never calls: `UNIMPLEMENTED`, as a server without them would answer. Written in
/// the form `async_trait` gives the others, which it cannot do for methods a macro generates.
macro_rules! unscripted {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        $(
            fn $name<'life0, 'async_trait>(
                &'life0 self,
                _: Request<$req>,
            ) -> std::pin::Pin<
                Box<
                    dyn std::future::Future<Output = Result<Response<$resp>, Status>>
                        + Send
                        + 'async_trait,
                >,
            >
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async {
                    Err(Status::unimplemented(concat!(stringify!($name), " is not scripted")))
                })
            }
        )*
    };
}

#[tonic::async_trait]
impl QdrantService for Scripted {
    async fn health_check(
        &self,
        _: Request<q::HealthCheckRequest>,
    ) -> Result<Response<q::HealthCheckReply>, Status> {
        Ok(Response::new(q::HealthCheckReply {
            title: "qdrant - vector search engine (scripted)".into(),
            version: "1.15.0".into(),
            ..Default::default()
        }))
    }
}

#[tonic::async_trait]
impl Collections for Scripted {
    async fn list(
        &self,
        _: Request<q::ListCollectionsRequest>,
    ) -> Result<Response<q::ListCollectionsResponse>, Status> {
        let collections = self
            .0
            .lock()
            .keys()
            .map(|name| q::CollectionDescription { name: name.clone() })
            .collect();
        Ok(Response::new(q::ListCollectionsResponse {
            collections,
            ..Default::default()
        }))
    }

    async fn create(
        &self,
        request: Request<q::CreateCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        let r = request.into_inner();
        let dim = match r.vectors_config.and_then(|c| c.config) {
            Some(vectors_config::Config::Params(p)) => p.size as usize,
            _ => return Err(Status::invalid_argument("one unnamed vector is scripted")),
        };
        let mut collections = self.0.lock();
        if collections.contains_key(&r.collection_name) {
            return Err(Status::already_exists(format!(
                "Collection `{}` already exists!",
                r.collection_name
            )));
        }
        collections.insert(
            r.collection_name,
            Collection {
                dim,
                points: BTreeMap::new(),
            },
        );
        Ok(collection_done())
    }

    async fn delete(
        &self,
        request: Request<q::DeleteCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        let removed = self.0.lock().remove(&request.into_inner().collection_name);
        Ok(Response::new(q::CollectionOperationResponse {
            result: removed.is_some(),
            ..Default::default()
        }))
    }

    async fn collection_exists(
        &self,
        request: Request<q::CollectionExistsRequest>,
    ) -> Result<Response<q::CollectionExistsResponse>, Status> {
        let exists = self
            .0
            .lock()
            .contains_key(&request.into_inner().collection_name);
        Ok(Response::new(q::CollectionExistsResponse {
            result: Some(q::CollectionExists { exists }),
            ..Default::default()
        }))
    }

    unscripted! {
        get(q::GetCollectionInfoRequest) -> q::GetCollectionInfoResponse;
        update(q::UpdateCollection) -> q::CollectionOperationResponse;
        update_aliases(q::ChangeAliases) -> q::CollectionOperationResponse;
        list_collection_aliases(q::ListCollectionAliasesRequest) -> q::ListAliasesResponse;
        list_aliases(q::ListAliasesRequest) -> q::ListAliasesResponse;
        collection_cluster_info(q::CollectionClusterInfoRequest) -> q::CollectionClusterInfoResponse;
        update_collection_cluster_setup(q::UpdateCollectionClusterSetupRequest) -> q::UpdateCollectionClusterSetupResponse;
        create_shard_key(q::CreateShardKeyRequest) -> q::CreateShardKeyResponse;
        delete_shard_key(q::DeleteShardKeyRequest) -> q::DeleteShardKeyResponse;
        list_shard_keys(q::ListShardKeysRequest) -> q::ListShardKeysResponse;
    }
}

#[tonic::async_trait]
impl Points for Scripted {
    async fn upsert(
        &self,
        request: Request<q::UpsertPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        let r = request.into_inner();
        {
            let mut largest = self
                .0
                .largest_upsert
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *largest = (*largest).max(r.points.len());
        }
        let mut collections = self.0.lock();
        let c = collections
            .get_mut(&r.collection_name)
            .ok_or_else(|| not_found(&r.collection_name))?;
        for p in r.points {
            let vector = match p.vectors.and_then(|v| v.vectors_options) {
                Some(q::vectors::VectorsOptions::Vector(v)) => dense(&v),
                _ => None,
            }
            .ok_or_else(|| Status::invalid_argument("one dense vector per point is scripted"))?;
            if vector.len() != c.dim {
                return Err(Status::invalid_argument(format!(
                    "Wrong input: Vector dimension error: expected dim: {}, got {}",
                    c.dim,
                    vector.len()
                )));
            }
            c.points.insert(
                point_id(&p.id)?,
                Point {
                    vector: normalised(vector),
                    payload: p.payload,
                },
            );
        }
        Ok(operation_done())
    }

    async fn delete(
        &self,
        request: Request<q::DeletePoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        let r = request.into_inner();
        let mut collections = self.0.lock();
        let c = collections
            .get_mut(&r.collection_name)
            .ok_or_else(|| not_found(&r.collection_name))?;
        match r.points.and_then(|s| s.points_selector_one_of) {
            Some(q::points_selector::PointsSelectorOneOf::Filter(f)) => {
                let mut doomed = Vec::new();
                for (id, p) in &c.points {
                    if filter_matches(Some(&f), *id, p)? {
                        doomed.push(*id);
                    }
                }
                for id in doomed {
                    c.points.remove(&id);
                }
            }
            Some(q::points_selector::PointsSelectorOneOf::Points(list)) => {
                for id in list.ids {
                    c.points.remove(&point_id(&Some(id))?);
                }
            }
            None => return Err(Status::invalid_argument("no points selected")),
        }
        Ok(operation_done())
    }

    async fn create_field_index(
        &self,
        request: Request<q::CreateFieldIndexCollection>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        let r = request.into_inner();
        if !self.0.lock().contains_key(&r.collection_name) {
            return Err(not_found(&r.collection_name));
        }
        Ok(operation_done())
    }

    async fn count(
        &self,
        request: Request<q::CountPoints>,
    ) -> Result<Response<q::CountResponse>, Status> {
        let r = request.into_inner();
        let collections = self.0.lock();
        let c = collections
            .get(&r.collection_name)
            .ok_or_else(|| not_found(&r.collection_name))?;
        let mut count = 0;
        for (id, p) in &c.points {
            count += u64::from(filter_matches(r.filter.as_ref(), *id, p)?);
        }
        Ok(Response::new(q::CountResponse {
            result: Some(q::CountResult { count }),
            ..Default::default()
        }))
    }

    async fn query(
        &self,
        request: Request<q::QueryPoints>,
    ) -> Result<Response<q::QueryResponse>, Status> {
        let r = request.into_inner();
        let query = match r.query.and_then(|q| q.variant) {
            Some(q::query::Variant::Nearest(input)) => match input.variant {
                Some(q::vector_input::Variant::Dense(d)) => d.data,
                _ => return Err(Status::invalid_argument("a dense query vector is scripted")),
            },
            _ => {
                return Err(Status::invalid_argument(
                    "only nearest queries are scripted",
                ))
            }
        };
        let query = normalised(query);
        let collections = self.0.lock();
        let c = collections
            .get(&r.collection_name)
            .ok_or_else(|| not_found(&r.collection_name))?;
        let mut scored = Vec::new();
        for (id, p) in &c.points {
            if filter_matches(r.filter.as_ref(), *id, p)? {
                let score: f32 = p.vector.iter().zip(&query).map(|(a, b)| a * b).sum();
                scored.push((score, *id, p));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored.truncate(r.limit.unwrap_or(10) as usize);
        let with_payload = r.with_payload.is_some();
        let result = scored
            .into_iter()
            .map(|(score, id, p)| q::ScoredPoint {
                id: Some(q::PointId::from(id)),
                payload: if with_payload {
                    p.payload.clone()
                } else {
                    HashMap::new()
                },
                score,
                ..Default::default()
            })
            .collect();
        Ok(Response::new(q::QueryResponse {
            result,
            ..Default::default()
        }))
    }

    unscripted! {
        get(q::GetPoints) -> q::GetResponse;
        update_vectors(q::UpdatePointVectors) -> q::PointsOperationResponse;
        delete_vectors(q::DeletePointVectors) -> q::PointsOperationResponse;
        set_payload(q::SetPayloadPoints) -> q::PointsOperationResponse;
        overwrite_payload(q::SetPayloadPoints) -> q::PointsOperationResponse;
        delete_payload(q::DeletePayloadPoints) -> q::PointsOperationResponse;
        clear_payload(q::ClearPayloadPoints) -> q::PointsOperationResponse;
        delete_field_index(q::DeleteFieldIndexCollection) -> q::PointsOperationResponse;
        create_vector_name(q::CreateVectorNameRequest) -> q::PointsOperationResponse;
        delete_vector_name(q::DeleteVectorNameRequest) -> q::PointsOperationResponse;
        search(q::SearchPoints) -> q::SearchResponse;
        search_batch(q::SearchBatchPoints) -> q::SearchBatchResponse;
        search_groups(q::SearchPointGroups) -> q::SearchGroupsResponse;
        scroll(q::ScrollPoints) -> q::ScrollResponse;
        recommend(q::RecommendPoints) -> q::RecommendResponse;
        recommend_batch(q::RecommendBatchPoints) -> q::RecommendBatchResponse;
        recommend_groups(q::RecommendPointGroups) -> q::RecommendGroupsResponse;
        discover(q::DiscoverPoints) -> q::DiscoverResponse;
        discover_batch(q::DiscoverBatchPoints) -> q::DiscoverBatchResponse;
        update_batch(q::UpdateBatchPoints) -> q::UpdateBatchResponse;
        query_batch(q::QueryBatchPoints) -> q::QueryBatchResponse;
        query_groups(q::QueryPointGroups) -> q::QueryGroupsResponse;
        facet(q::FacetCounts) -> q::FacetResponse;
        search_matrix_pairs(q::SearchMatrixPoints) -> q::SearchMatrixPairsResponse;
        search_matrix_offsets(q::SearchMatrixPoints) -> q::SearchMatrixOffsetsResponse;
    }
}
