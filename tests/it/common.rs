//! The local world for end-to-end tests: a Lambda Runtime API served here, the built function run
//! under it as Lambda runs it, the Partner Central emulator in-process, moto's SQS server, and an
//! SQS event source mapping (receive, invoke, delete or release) like Lambda's.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// Credentials the emulator and moto accept.
pub const ACCESS_KEY: &str = "test";
pub const SECRET_KEY: &str = "test";

/// What one invocation answered: the response document, or the error document.
pub type Answer = Result<Value, Value>;

struct Pending {
    id: String,
    /// The raw payload: the Runtime API delivers bytes, and the function's runtime parses them.
    payload: Bytes,
    deadline_ms: u64,
}

#[derive(Default)]
struct Waiting {
    answers: HashMap<String, oneshot::Sender<Answer>>,
    init_error: Option<Value>,
    /// `/next` polls received: the first one marks the end of the function's init.
    polls: u64,
}

/// A Lambda Runtime API (`/2018-06-01/runtime/...`) on loopback, fed by [`RuntimeApi::invoke`].
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::UnboundedSender<Pending>,
    waiting: Arc<Mutex<Waiting>>,
    counter: AtomicU64,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the runtime API");
        let addr = listener.local_addr().unwrap();
        let (queue, receiver) = mpsc::unbounded_channel::<Pending>();
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let server = {
            let waiting = waiting.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { return };
                    let receiver = receiver.clone();
                    let waiting = waiting.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            runtime_route(request, receiver.clone(), waiting.clone())
                        });
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                    });
                }
            })
        };
        Self { addr, queue, waiting, counter: AtomicU64::new(0), server }
    }

    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` takes it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Invokes the function with `payload` and a deadline `timeout` from now, and waits for its answer.
    pub async fn invoke(&self, payload: Value, timeout: Duration) -> Answer {
        self.invoke_bytes(payload.to_string(), timeout).await
    }

    /// [`RuntimeApi::invoke`] with a raw payload, which need not be JSON at all.
    pub async fn invoke_bytes(&self, payload: impl Into<Bytes>, timeout: Duration) -> Answer {
        let (id, answer) = self.submit(payload.into(), timeout);
        match tokio::time::timeout(timeout + Duration::from_secs(5), answer).await {
            Ok(Ok(answer)) => answer,
            _ => panic!("no answer to invocation {id} within {timeout:?} (+5 s)"),
        }
    }

    /// Invokes, and gives up after `wait`: `None` when no answer came (the function crashed or hung).
    /// As in Lambda, an answer to an abandoned invocation is then ignored.
    pub async fn invoke_or_abandon(&self, payload: Value, timeout: Duration, wait: Duration) -> Option<Answer> {
        let (id, answer) = self.submit(Bytes::from(payload.to_string()), timeout);
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(answer)) => Some(answer),
            _ => {
                self.waiting.lock().unwrap().answers.remove(&id);
                None
            }
        }
    }

    fn submit(&self, payload: Bytes, timeout: Duration) -> (String, oneshot::Receiver<Answer>) {
        let id = format!("req-{}", self.counter.fetch_add(1, Ordering::Relaxed) + 1);
        let (sender, receiver) = oneshot::channel();
        self.waiting.lock().unwrap().answers.insert(id.clone(), sender);
        let deadline_ms = now_ms() + timeout.as_millis() as u64;
        self.queue.send(Pending { id: id.clone(), payload, deadline_ms }).expect("runtime API is running");
        (id, receiver)
    }

    /// Waits until the function has polled for its first event, that is, until its init is over.
    pub async fn wait_for_first_poll(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while self.waiting.lock().unwrap().polls == 0 {
            assert!(tokio::time::Instant::now() < deadline, "the function did not poll for an event within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn runtime_route(
    request: Request<Incoming>,
    receiver: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>>,
    waiting: Arc<Mutex<Waiting>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = |status: StatusCode, body: String| {
        Ok(Response::builder().status(status).body(Full::new(Bytes::from(body))).unwrap())
    };
    let parts: Vec<&str> = path.trim_start_matches("/2018-06-01/runtime/").split('/').collect();
    match parts.as_slice() {
        ["invocation", "next"] => {
            waiting.lock().unwrap().polls += 1;
            let next = receiver.lock().await.recv().await;
            let Some(pending) = next else { return reply(StatusCode::GONE, String::new()) };
            Ok(Response::builder()
                .header("Lambda-Runtime-Aws-Request-Id", &pending.id)
                .header("Lambda-Runtime-Deadline-Ms", pending.deadline_ms.to_string())
                .header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:test")
                .header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
                .body(Full::new(pending.payload))
                .unwrap())
        }
        ["invocation", id, outcome @ ("response" | "error")] => {
            let sender = waiting.lock().unwrap().answers.remove(*id);
            if let Some(sender) = sender {
                let _ = sender.send(if *outcome == "response" { Ok(parsed) } else { Err(parsed) });
            }
            reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}".into())
        }
        ["init", "error"] => {
            waiting.lock().unwrap().init_error = Some(parsed);
            reply(StatusCode::ACCEPTED, "{\"status\":\"OK\"}".into())
        }
        _ => reply(StatusCode::NOT_FOUND, String::new()),
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A Function URL event (payload format 2.0) as Lambda delivers a POST of `body` with `headers`.
pub fn function_url_event(body: &str, headers: Value) -> Value {
    let mut event = fixtures::function_url("POST", headers, body, false);
    event["requestContext"]["timeEpoch"] = now_ms().into();
    event
}

/// A webhook call as a CRM signs it: `X-Webhook-Timestamp` and the HMAC of `timestamp.body` under `secret`.
pub fn signed_webhook(body: &str, timestamp: u64, secret: &str) -> Value {
    let ts = timestamp.to_string();
    let signature = opportunity_disassociator::webhook::signature::signature(secret.as_bytes(), &ts, body.as_bytes());
    let mut event = fixtures::signed_post(body, timestamp, &signature);
    event["requestContext"]["timeEpoch"] = now_ms().into();
    event
}

/// A built function binary, run as Lambda runs it, its output gathered line by line.
pub struct Function {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The tasks reading its stdout and stderr, which end at the streams' end.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Function {
    /// Starts the worker with Lambda's environment, the test credentials, and `env` on top.
    pub fn start(runtime: &RuntimeApi, env: &[(&str, String)]) -> Self {
        Self::start_binary(env!("CARGO_BIN_EXE_opportunity-disassociator"), runtime, env)
    }

    /// Starts the webhook function, as [`Function::start`] does the worker.
    pub fn start_webhook(runtime: &RuntimeApi, env: &[(&str, String)]) -> Self {
        Self::start_binary(env!("CARGO_BIN_EXE_opportunity-disassociator-webhook"), runtime, env)
    }

    fn start_binary(binary: &str, runtime: &RuntimeApi, env: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "opportunity-disassociator-test")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/opportunity-disassociator-test")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start the function binary");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let lines = lines.clone();
            readers.push(tokio::spawn(async move {
                let mut reader = BufReader::new(stream).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if std::env::var_os("SHOW_FUNCTION_LOGS").is_some() {
                        eprintln!("function: {line}");
                    }
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Self { child, lines, readers }
    }

    /// The lines read so far: those of an answered invocation may still be on their way.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every line the process wrote, read to the end of its output: the process is ended first when
    /// it still runs (everything an answered invocation logs is written before its answer goes out),
    /// so that a line's absence means something. The function takes no invocation after this.
    pub async fn all_lines(&mut self) -> Vec<String> {
        if self.is_running() {
            self.kill().await;
        }
        for reader in self.readers.drain(..) {
            tokio::time::timeout(Duration::from_secs(10), reader).await.expect("the output ends").expect("read");
        }
        self.lines()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit (an init failure), and gives its exit code.
    pub async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait()).await.ok()?.ok()?.code()
    }

    /// Waits for init to fail (the process exits, not zero, within 30 s) and gives everything it wrote.
    pub async fn init_failure(&mut self) -> String {
        let code = self.exit_code(Duration::from_secs(30)).await;
        assert!(matches!(code, Some(c) if c != 0), "init must fail, got {code:?}");
        self.all_lines().await.join("\n")
    }

    /// Kills the process with SIGKILL, as a crash or Lambda's timeout would end it, and reaps it.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill the function process");
    }
}

/// moto's server, as the SQS API. Its path comes from `MOTO_SERVER` (the Makefile sets it to the
/// venv's), or `.venv/bin/moto_server`.
pub struct Moto {
    /// The server's process, ended when this is dropped.
    _process: Child,
    pub endpoint: String,
    pub sqs: aws_sdk_sqs::Client,
    /// moto's ReceiveMessage is not atomic: two at once may deliver one message twice, or fail (500)
    /// moving the same message to the dead-letter queue. The pollers here take turns, as SQS's own
    /// receive is atomic.
    receiving: tokio::sync::Mutex<()>,
}

impl Moto {
    pub async fn start() -> Self {
        let (child, endpoint, sqs) = crate::moto_server::start(ACCESS_KEY, SECRET_KEY).await;
        Self { _process: child, endpoint, sqs, receiving: tokio::sync::Mutex::new(()) }
    }

    /// A Secrets Manager client on moto's server.
    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("eu-west-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    /// A DynamoDB client on moto's server.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("eu-west-1"))
            .endpoint_url(&self.endpoint)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "test",
            ))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Creates a write-slots table as the template does (partition key `pk`), and gives its name.
    pub async fn write_slots_table(&self, name: &str) -> String {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        self.dynamodb()
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().unwrap())
            .send()
            .await
            .expect("create the write-slots table");
        name.to_owned()
    }

    /// Creates a work queue whose redrive policy moves a message to a new dead-letter queue after
    /// `max_receives` receives.
    pub async fn queues(&self, name: &str, fifo: bool, max_receives: u32, visibility_seconds: u32) -> Queues {
        let suffix = if fifo { ".fifo" } else { "" };
        let mut dlq = self.sqs.create_queue().queue_name(format!("{name}-dlq{suffix}"));
        let mut work = self.sqs.create_queue().queue_name(format!("{name}{suffix}"));
        if fifo {
            dlq = dlq.attributes(QueueAttributeName::FifoQueue, "true");
            work = work
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::ContentBasedDeduplication, "true");
        }
        let dlq_url = dlq.send().await.expect("create the dead-letter queue").queue_url.unwrap();
        let dlq_arn = self.arn(&dlq_url).await;
        let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()});
        let work_url = work
            .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
            .attributes(QueueAttributeName::VisibilityTimeout, visibility_seconds.to_string())
            .send()
            .await
            .expect("create the work queue")
            .queue_url
            .unwrap();
        let work_arn = self.arn(&work_url).await;
        Queues { work_url, work_arn, dlq_url, fifo }
    }

    async fn arn(&self, url: &str) -> String {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes");
        attributes.attributes.unwrap()[&QueueAttributeName::QueueArn].clone()
    }

    /// Sends `bodies` to the work queue (FIFO: in `group`).
    pub async fn send(&self, queues: &Queues, group: &str, bodies: &[String]) {
        for chunk in bodies.chunks(10) {
            let mut batch = self.sqs.send_message_batch().queue_url(&queues.work_url);
            for (i, body) in chunk.iter().enumerate() {
                let mut entry =
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder().id(format!("e{i}")).message_body(body);
                if queues.fifo {
                    entry = entry.message_group_id(group);
                }
                batch = batch.entries(entry.build().unwrap());
            }
            let sent = batch.send().await.expect("send to the work queue");
            assert!(sent.failed.is_empty(), "moto refused messages: {:?}", sent.failed);
        }
    }

    /// Receives up to `max` messages with all their attributes (one receive at a time, see `receiving`).
    pub async fn receive(&self, url: &str, max: i32) -> Vec<aws_sdk_sqs::types::Message> {
        let _turn = self.receiving.lock().await;
        let received = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive");
        received.messages.unwrap_or_default()
    }

    /// Every message in the dead-letter queue, with its attributes (removes them).
    pub async fn drain(&self, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let messages = self.receive(url, 10).await;
            if messages.is_empty() {
                return all;
            }
            for m in &messages {
                self.sqs
                    .delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            all.extend(messages);
        }
    }

    /// Approximate number of messages in a queue, visible or in flight.
    pub async fn depth(&self, url: &str) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        let count = |name| attributes.get(&name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        count(QueueAttributeName::ApproximateNumberOfMessages)
            + count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
    }
}

/// A work queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct Queues {
    pub work_url: String,
    pub work_arn: String,
    pub dlq_url: String,
    pub fifo: bool,
}

/// What one pass of the event source mapping did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PumpPass {
    pub received: usize,
    pub failed: usize,
    /// No answer came (the function crashed or hung): the batch was left in flight.
    pub abandoned: bool,
    /// Done, but not deleted (a stale receipt handle): they come back.
    pub undeleted: usize,
}

/// Lambda's SQS event source mapping, in small: receive a batch, invoke, delete the records not
/// reported failed, and make the failed ones visible again at once (a real mapping waits for the
/// visibility timeout; the receive count, and so the redrive, is the same).
pub async fn pump_once(moto: &Moto, queues: &Queues, runtime: &RuntimeApi, batch: i32, timeout: Duration) -> PumpPass {
    pump(moto, queues, runtime, batch, timeout, None, true).await
}

/// [`pump_once`] until the work queue is empty, or fails after `within`; other pollers may feed the
/// same queue. moto counts a queue's visible and its in-flight messages one after the other, so a
/// message that becomes visible between the two (a failed record released by another poller) is in
/// neither: the queue is taken as empty when it reads empty and a receive after that finds nothing.
pub async fn pump_until_drained(moto: &Moto, queues: &Queues, runtime: &RuntimeApi, within: Duration) {
    let started = std::time::Instant::now();
    loop {
        assert!(started.elapsed() < within, "the queue did not drain within {within:?}");
        let empty = moto.depth(&queues.work_url).await == 0;
        if pump_once(moto, queues, runtime, 10, within).await.received == 0 && empty {
            return;
        }
    }
}

/// [`pump_once`] as Lambda's mapping does it: a failed record is left alone, to come back when its
/// visibility runs out (the queue's timeout, or the function's own `ChangeMessageVisibility`).
pub async fn pump_as_lambda(moto: &Moto, queues: &Queues, runtime: &RuntimeApi, timeout: Duration) -> PumpPass {
    pump(moto, queues, runtime, 10, timeout, None, false).await
}

/// [`pump_once`] that gives up on the invocation after `wait`. An abandoned batch is left in flight,
/// as Lambda leaves it when the function crashes or times out: each message comes back when its
/// visibility timeout ends, one receive further on its way to the redrive.
pub async fn pump_once_or_abandon(
    moto: &Moto,
    queues: &Queues,
    runtime: &RuntimeApi,
    batch: i32,
    timeout: Duration,
    wait: Duration,
) -> PumpPass {
    pump(moto, queues, runtime, batch, timeout, Some(wait), true).await
}

async fn pump(
    moto: &Moto,
    queues: &Queues,
    runtime: &RuntimeApi,
    batch: i32,
    timeout: Duration,
    wait: Option<Duration>,
    release_failed: bool,
) -> PumpPass {
    let messages = moto.receive(&queues.work_url, batch).await;
    if messages.is_empty() {
        return PumpPass::default();
    }
    let records: Vec<Value> = messages.iter().map(|m| sqs_record(m, &queues.work_arn)).collect();
    let event = json!({ "Records": records });
    let answer = match wait {
        None => runtime.invoke(event, timeout).await,
        Some(wait) => match runtime.invoke_or_abandon(event, timeout, wait).await {
            Some(answer) => answer,
            None => return PumpPass { received: messages.len(), abandoned: true, ..PumpPass::default() },
        },
    };
    let failed: Vec<String> = match &answer {
        Ok(response) => response["batchItemFailures"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        // A function error: the whole batch comes back.
        Err(_) => messages.iter().filter_map(|m| m.message_id().map(str::to_owned)).collect(),
    };
    let (mut release, mut delete) = (Vec::new(), Vec::new());
    for (i, message) in messages.iter().enumerate() {
        let handle = message.receipt_handle().unwrap();
        if failed.iter().any(|id| Some(id.as_str()) == message.message_id()) {
            release.push(
                aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .unwrap(),
            );
        } else {
            delete.push(
                aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(handle)
                    .build()
                    .unwrap(),
            );
        }
    }
    if !release.is_empty() && release_failed {
        // Best effort, as the real mapping: a message not released comes back after its visibility timeout.
        let _ = moto
            .sqs
            .change_message_visibility_batch()
            .queue_url(&queues.work_url)
            .set_entries(Some(release))
            .send()
            .await;
    }
    let mut undeleted = 0;
    if !delete.is_empty() {
        let deleted = moto
            .sqs
            .delete_message_batch()
            .queue_url(&queues.work_url)
            .set_entries(Some(delete))
            .send()
            .await
            .expect("delete");
        // A receipt handle goes stale when the message was received again meanwhile (its visibility
        // timeout ended during a long invocation): the message comes back and is done again, as
        // with Lambda's own mapping.
        undeleted = deleted.failed.len();
    }
    PumpPass { received: messages.len(), failed: failed.len(), abandoned: false, undeleted }
}

/// An SQS message as Lambda's event source mapping delivers it.
pub fn sqs_record(message: &aws_sdk_sqs::types::Message, queue_arn: &str) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes()
        .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect())
        .unwrap_or_default();
    let mut record = fixtures::sqs_record(message.message_id().unwrap_or_default(), message.body().unwrap_or_default());
    record["receiptHandle"] = json!(message.receipt_handle());
    record["md5OfBody"] = json!(message.md5_of_body());
    record["attributes"] = Value::Object(attributes);
    record["messageAttributes"] = message_attributes(message);
    record["eventSourceARN"] = json!(queue_arn);
    record
}

/// A message's attributes as Lambda's event source mapping gives them.
fn message_attributes(message: &aws_sdk_sqs::types::Message) -> Value {
    use base64::Engine;
    let attributes = message.message_attributes().into_iter().flatten().map(|(name, a)| {
        let binary = a.binary_value().map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
        let value = json!({"stringValue": a.string_value(), "binaryValue": binary, "stringListValues": [],
                           "binaryListValues": [], "dataType": a.data_type()});
        (name.clone(), value)
    });
    Value::Object(attributes.collect())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[allow(unused_imports)]
pub use fixtures::request;

/// The credentials a suite signs with: the emulator takes only these, and the functions are given
/// them. A suite that checks no secret reaches a log line has keys of its own.
pub struct Keys {
    pub access: &'static str,
    pub secret: &'static str,
}

/// The keys of a suite that needs no keys of its own.
pub const TEST_KEYS: Keys = Keys { access: ACCESS_KEY, secret: SECRET_KEY };

/// The emulator an end-to-end suite runs: `seed`, taking only `keys`, no request log; quotas, faults
/// and behaviour at their defaults (set them on the result).
pub fn emulator_config(seed: &str, keys: &Keys) -> partner_central_emulator::EmulatorConfig {
    partner_central_emulator::EmulatorConfig {
        seed: partner_central_emulator::Seed::from_json(seed).expect("seed"),
        credentials: std::collections::BTreeMap::from([(keys.access.to_owned(), keys.secret.to_owned())]),
        log_requests: false,
        ..Default::default()
    }
}

pub async fn start_emulator(
    config: partner_central_emulator::EmulatorConfig,
) -> partner_central_emulator::RunningEmulator {
    partner_central_emulator::Emulator::start(config).await.expect("start the emulator")
}

/// A function's environment: `keys`, the emulator's endpoint and, with moto, moto's for SQS, Secrets
/// Manager and DynamoDB; then `extra`, each setting replacing one of the same name.
pub fn function_env<V: AsRef<str>>(
    keys: &Keys,
    emulator: &partner_central_emulator::RunningEmulator,
    moto: Option<&Moto>,
    extra: &[(&str, V)],
) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = vec![
        ("AWS_ACCESS_KEY_ID", keys.access.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", keys.secret.to_owned()),
        ("AWS_ENDPOINT_URL_PARTNERCENTRAL_SELLING", emulator.endpoint()),
    ];
    if let Some(moto) = moto {
        for name in ["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_DYNAMODB"] {
            env.push((name, moto.endpoint.clone()));
        }
    }
    for (name, value) in extra {
        // A setting's name, kept for the life of the test process (a few per test).
        let name: &'static str = Box::leak(name.to_string().into_boxed_str());
        env.retain(|(k, _)| *k != name);
        env.push((name, value.as_ref().to_owned()));
    }
    env
}

/// An opportunity per `(id, solution)` of the Sandbox catalog, each holding that solution.
pub type Holding = (String, String);

/// The emulator an end-to-end suite of the write pacing runs: `opportunities`, writes at 10/s on a
/// bucket of 1, and `daily_quotas`.
pub async fn solutions_emulator(
    opportunities: &[Holding],
    daily_quotas: partner_central_emulator::DailyQuotaConfig,
) -> partner_central_emulator::RunningEmulator {
    use partner_central_emulator::{EmulatorConfig, QuotaConfig, TokenBucketConfig};
    let seed = opportunities
        .iter()
        .map(|(id, solution)| {
            format!(
                r#"{{"Catalog": "Sandbox", "Id": "{id}", "RelatedEntityIdentifiers": {{"Solutions": ["{solution}"]}}}}"#
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let quotas = QuotaConfig { write: Some(TokenBucketConfig { rate: 10.0, burst: 1.0 }), ..QuotaConfig::default() };
    let config = emulator_config(&format!(r#"{{"Opportunities": [{seed}]}}"#), &TEST_KEYS);
    start_emulator(EmulatorConfig { quotas, daily_quotas, ..config }).await
}

/// A work queue `name` (3 receives, 30 s visibility) and its dead-letter queue, holding a request to
/// disassociate each of `opportunities`' solutions.
pub async fn solutions_backlog(moto: &Moto, name: &str, opportunities: &[Holding]) -> Queues {
    let queues = moto.queues(name, false, 3, 30).await;
    let bodies: Vec<String> = opportunities
        .iter()
        .map(|(id, solution)| fixtures::request("Sandbox", id, "Solutions", solution).to_string())
        .collect();
    moto.send(&queues, "", &bodies).await;
    queues
}
