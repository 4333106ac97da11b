//! Running a job on timely-dataflow: connecting the processes (with a deadline and a job
//! fingerprint check, so an unreachable or mismatched peer is a clear error rather than timely's
//! endless retry), starting the workers, and the [`Exchanger`] through which workers trade
//! messages in bulk-synchronous rounds.
//!
//! Each worker installs one timely dataflow: an input, an exchange channel routed by destination
//! worker, and a collecting operator followed by a probe. A round sends every outgoing message
//! with the round number as its timestamp, closes the round, and steps the worker until the probe
//! shows that no worker can still deliver a message of that round. Timely's progress tracking is
//! the barrier; its TCP layer carries the bytes between processes.
//!
//! Failure: when a peer process dies, timely's network threads fail and every worker touching the
//! broken channels panics; the panic comes back here as [`Error::PeerLost`]. A worker that fails
//! with an error raises an abort flag that stops the other workers of its process, and drops its
//! dataflow so that the process can exit (its peers then see the broken connection in turn).

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use timely::communication::allocator::zero_copy::initialize::{
    initialize_networking_from_sockets, CommsGuard,
};
use timely::communication::allocator::ProcessBuilder;
use timely::communication::{AllocatorBuilder, Hooks};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::{Input, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};
use timely::worker::Worker;

use crate::error::{Error, Result};
use crate::topology::Topology;
use crate::wire::{Reader, Writer};

/// Largest payload of one timely message; bigger outboxes are sent in chunks.
const CHUNK_BYTES: usize = 4 << 20;
/// First bytes of the connection handshake.
const MAGIC: u64 = u64::from_le_bytes(*b"KINDRED1");

/// Bytes of a message, serialised as one byte string (not element by element).
#[derive(Clone, Debug, Default)]
struct Payload(Vec<u8>);

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Payload;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Payload, E> {
                Ok(Payload(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(
                self,
                v: Vec<u8>,
            ) -> std::result::Result<Payload, E> {
                Ok(Payload(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Payload, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(Payload(out))
            }
        }
        deserializer.deserialize_byte_buf(Visit)
    }
}

/// One chunk of one worker's outbox for another worker in one round.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Packet {
    to: u32,
    from: u32,
    seq: u32,
    bytes: Payload,
}

/// Bytes a worker sent to other workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeStats {
    /// Rounds completed.
    pub rounds: u64,
    /// Payload bytes sent to other workers (of any process).
    pub bytes_to_workers: u64,
    /// Of those, bytes sent to workers of other processes (over the network).
    pub bytes_to_processes: u64,
}

impl ExchangeStats {
    /// Sums traffic over workers (rounds: the most any worker ran).
    pub fn add(&mut self, other: &ExchangeStats) {
        self.rounds = self.rounds.max(other.rounds);
        self.bytes_to_workers += other.bytes_to_workers;
        self.bytes_to_processes += other.bytes_to_processes;
    }
}

/// Messages to each worker for one round.
pub struct Outbox {
    to: Vec<Writer>,
}

impl Outbox {
    /// The message being built for worker `worker`.
    pub fn to(&mut self, worker: usize) -> &mut Writer {
        &mut self.to[worker]
    }

    /// The same message for every worker (this one included).
    pub fn broadcast(&mut self, write: impl Fn(&mut Writer)) {
        for w in &mut self.to {
            write(w);
        }
    }
}

/// What one worker received from one sender in a round.
pub struct Received {
    pub from: usize,
    pub bytes: Vec<u8>,
}

/// A worker's handle on the job: who it is, and rounds of message exchange with the others.
pub struct Exchanger<'w> {
    worker: &'w mut Worker,
    input: InputHandleVec<u64, Packet>,
    probe: ProbeHandle<u64>,
    inbox: Rc<RefCell<Vec<(u64, Packet)>>>,
    round: u64,
    workers_per_process: usize,
    abort: Arc<AtomicBool>,
    stats: ExchangeStats,
}

impl Exchanger<'_> {
    /// This worker's index among all workers of the job.
    pub fn index(&self) -> usize {
        self.worker.index()
    }

    /// Workers in the job.
    pub fn peers(&self) -> usize {
        self.worker.peers()
    }

    /// Worker threads per process.
    pub fn workers_per_process(&self) -> usize {
        self.workers_per_process
    }

    /// Traffic so far.
    pub fn stats(&self) -> ExchangeStats {
        self.stats
    }

    /// An empty outbox for the next round.
    pub fn outbox(&self) -> Outbox {
        Outbox {
            to: (0..self.peers()).map(|_| Writer::default()).collect(),
        }
    }

    /// Sends every message of `outbox` and returns what every worker sent to this one, one entry
    /// per worker in worker order (empty when it sent nothing). Every worker must call this the
    /// same number of times.
    pub fn exchange(&mut self, outbox: Outbox) -> Result<Vec<Received>> {
        let me = self.index();
        let my_process = me / self.workers_per_process;
        let round = self.round;
        let mut own = Vec::new();
        for (to, writer) in outbox.to.into_iter().enumerate() {
            if to == me {
                own = writer.bytes;
                continue;
            }
            let n = writer.bytes.len() as u64;
            self.stats.bytes_to_workers += n;
            if to / self.workers_per_process != my_process {
                self.stats.bytes_to_processes += n;
            }
            for (seq, chunk) in writer.bytes.chunks(CHUNK_BYTES).enumerate() {
                self.input.send(Packet {
                    to: to as u32,
                    from: me as u32,
                    seq: seq as u32,
                    bytes: Payload(chunk.to_vec()),
                });
            }
        }
        self.input.advance_to(round + 1);
        while self.probe.less_than(&(round + 1)) {
            if self.abort.load(Ordering::Relaxed) {
                return Err(Error::PeerLost(
                    "another worker of this process stopped".into(),
                ));
            }
            self.worker.step_or_park(Some(Duration::from_millis(20)));
        }
        self.round += 1;
        self.stats.rounds = self.round;

        let mut mine: Vec<Packet> = Vec::new();
        {
            let mut inbox = self.inbox.borrow_mut();
            let mut i = 0;
            while i < inbox.len() {
                if inbox[i].0 == round {
                    mine.push(inbox.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
        }
        mine.sort_by_key(|p| (p.from, p.seq));
        let mut out: Vec<Received> = (0..self.peers())
            .map(|from| Received {
                from,
                bytes: Vec::new(),
            })
            .collect();
        out[me].bytes = own;
        for p in mine {
            let slot = &mut out[p.from as usize].bytes;
            if slot.is_empty() {
                *slot = p.bytes.0;
            } else {
                slot.extend_from_slice(&p.bytes.0);
            }
        }
        Ok(out)
    }

    /// Sends `write`'s message to every worker and returns every worker's message.
    pub fn all_gather(&mut self, write: impl Fn(&mut Writer)) -> Result<Vec<Received>> {
        let mut outbox = self.outbox();
        outbox.broadcast(write);
        self.exchange(outbox)
    }

    /// Every worker's `value`, in worker order.
    pub fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>> {
        self.all_gather(|w| w.u64(value))?
            .iter()
            .map(|m| Reader::new(&m.bytes, m.from).u64())
            .collect()
    }

    /// Waits until every worker reaches this point.
    pub fn barrier(&mut self) -> Result<()> {
        let outbox = self.outbox();
        self.exchange(outbox).map(|_| ())
    }
}

/// Runs `job` on every worker of this process and returns the local workers' results in worker
/// order. `fingerprint` identifies the job: processes started with different jobs refuse to
/// connect to each other.
///
/// When a worker fails, the process's connections are shut down at once (not closed cleanly),
/// so that every peer's network threads fail and its workers stop with [`Error::PeerLost`]
/// instead of waiting for messages that will never come; the failed process's own network
/// threads are then left to die with it rather than joined.
pub fn run<T, F>(topology: &Topology, fingerprint: u64, job: F) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(&mut Exchanger<'_>) -> Result<T> + Send + Sync + 'static,
{
    topology.validate()?;
    let threads = topology.workers_per_process;
    let hooks = Hooks::default();
    let mut connections: Vec<TcpStream> = Vec::new();
    let (builders, comms): (Vec<AllocatorBuilder>, Option<CommsGuard>) =
        if topology.processes() == 1 {
            let builders = ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), None)
                .into_iter()
                .map(AllocatorBuilder::Process)
                .collect();
            (builders, None)
        } else {
            let sockets = connect(topology, fingerprint)?;
            for socket in sockets.iter().flatten() {
                connections.push(socket.try_clone().map_err(|e| {
                    Error::PeerLost(format!("keeping a handle on a connection: {e}"))
                })?);
            }
            let process_allocators =
                ProcessBuilder::new_typed_vector(threads, hooks.refill.clone(), None);
            let (builders, guard) = initialize_networking_from_sockets(
                process_allocators,
                sockets,
                topology.process,
                threads,
                hooks,
            )
            .map_err(|e| Error::PeerLost(format!("starting the network threads: {e}")))?;
            (
                builders.into_iter().map(AllocatorBuilder::Tcp).collect(),
                Some(guard),
            )
        };
    let connections = Arc::new(connections);
    let abort = Arc::new(AtomicBool::new(false));
    let failure: Arc<Mutex<Option<Error>>> = Arc::new(Mutex::new(None));
    let (worker_connections, worker_abort, worker_failure) = (
        Arc::clone(&connections),
        Arc::clone(&abort),
        Arc::clone(&failure),
    );
    let guards = timely::execute::execute_from(
        builders,
        // The network guard stays with us: timely would join its threads on drop, which hangs
        // or panics once a peer is gone.
        Box::new(()),
        timely::WorkerConfig::default(),
        move |worker| {
            // Panics are caught here rather than by timely, whose join loses their message.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_worker(worker, threads, Arc::clone(&worker_abort), &job)
            }))
            .unwrap_or_else(|panic| Err(panic_error(panic, worker.index())));
            match result {
                Ok(value) => Some(value),
                Err(e) => {
                    shut_down(&worker_connections);
                    worker_abort.store(true, Ordering::Relaxed);
                    record(&worker_failure, e);
                    for id in worker.installed_dataflows() {
                        worker.drop_dataflow(id);
                    }
                    None
                }
            }
        },
    )
    .map_err(|e| Error::PeerLost(format!("starting the workers: {e}")))?;
    let first_worker = topology.process * threads;
    let joined = guards.join();
    let mut results = Vec::with_capacity(threads);
    for (i, outcome) in joined.into_iter().enumerate() {
        match outcome {
            Ok(Some(value)) => results.push(value),
            Ok(None) => {}
            // A panic after the job's own result (timely tearing down a broken channel).
            Err(message) => record(
                &failure,
                Error::Worker {
                    worker: first_worker + i,
                    message,
                },
            ),
        }
    }
    let failed = failure.lock().ok().and_then(|mut f| f.take());
    match failed {
        Some(e) => {
            shut_down(&connections);
            // Its threads are failing on the shut-down sockets; joining them could block on a
            // peer that is still alive, and their panics are already reported.
            std::mem::forget(comms);
            Err(e)
        }
        None => {
            // A clean end: the network threads finish once every peer has said goodbye. A peer
            // that fails after this process's work is done shows up as their panic here.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(comms))) {
                Ok(()) => Ok(results),
                Err(_) => Err(Error::PeerLost(
                    "a connection broke while the job was finishing".into(),
                )),
            }
        }
    }
}

/// Keeps the first failure, preferring a root cause over "another worker stopped".
fn record(failure: &Mutex<Option<Error>>, e: Error) {
    if let Ok(mut slot) = failure.lock() {
        if slot.is_none() || (is_echo(slot.as_ref()) && !is_echo(Some(&e))) {
            *slot = Some(e);
        }
    }
}

/// Shuts every connection down in both directions, so that peers see an error, not a goodbye.
fn shut_down(connections: &[TcpStream]) {
    for c in connections {
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
}

/// The error for a worker's panic: a lost peer when it came from timely's network layer.
fn panic_error(panic: Box<dyn std::any::Any + Send>, worker: usize) -> Error {
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned());
    if message.contains("timely communication error")
        || message.contains("poison")
        || message.contains("MergeQueue")
    {
        Error::PeerLost(message)
    } else {
        Error::Worker { worker, message }
    }
}

fn is_echo(e: Option<&Error>) -> bool {
    matches!(e, Some(Error::PeerLost(m)) if m.starts_with("another worker"))
}

fn run_worker<T>(
    worker: &mut Worker,
    workers_per_process: usize,
    abort: Arc<AtomicBool>,
    job: &(dyn Fn(&mut Exchanger<'_>) -> Result<T> + Send + Sync),
) -> Result<T> {
    let mut input: InputHandleVec<u64, Packet> = InputHandleVec::new();
    let inbox: Rc<RefCell<Vec<(u64, Packet)>>> = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&inbox);
    let probe = worker.dataflow::<u64, _, _>(|scope| {
        scope
            .input_from(&mut input)
            .unary::<CapacityContainerBuilder<Vec<()>>, _, _, _>(
                Exchange::new(|p: &Packet| p.to as u64),
                "Deliver",
                move |_capability, _info| {
                    move |input, _output| {
                        input.for_each(|time, data| {
                            let t = time.least().copied().unwrap_or_default();
                            sink.borrow_mut().extend(data.drain(..).map(|p| (t, p)));
                        });
                    }
                },
            )
            .probe()
            .0
    });
    let mut exchanger = Exchanger {
        worker,
        input,
        probe,
        inbox,
        round: 0,
        workers_per_process,
        abort,
        stats: ExchangeStats::default(),
    };
    job(&mut exchanger)
}

/// Opens one TCP connection to every other process: process `i` connects to every lower index
/// and accepts every higher one (timely's convention), each side checking the other's handshake
/// (magic, job fingerprint, process index) so that a stray or mismatched process is refused.
fn connect(topology: &Topology, fingerprint: u64) -> Result<Vec<Option<TcpStream>>> {
    let me = topology.process;
    let n = topology.processes();
    let deadline = Instant::now() + topology.connect_timeout;
    let seconds = topology.connect_timeout.as_secs();
    let listener = TcpListener::bind(&topology.addresses[me]).map_err(|e| Error::Listen {
        process: me,
        address: topology.addresses[me].clone(),
        cause: e.to_string(),
    })?;
    listener.set_nonblocking(true).map_err(|e| Error::Listen {
        process: me,
        address: topology.addresses[me].clone(),
        cause: e.to_string(),
    })?;
    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    for (peer, slot) in sockets.iter_mut().enumerate().take(me) {
        let address = &topology.addresses[peer];
        let unreachable = |cause: String| Error::Unreachable {
            process: me,
            peer,
            address: address.clone(),
            seconds,
            cause,
        };
        let mut stream = loop {
            let attempt = address
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve: {e}"))
                .and_then(|mut addrs| {
                    addrs
                        .next()
                        .ok_or_else(|| "resolves to no address".to_string())
                })
                .and_then(|addr| {
                    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                        .map_err(|e| e.to_string())
                });
            match attempt {
                Ok(s) => break s,
                Err(cause) if Instant::now() >= deadline => return Err(unreachable(cause)),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        handshake(&mut stream, me, peer, fingerprint, deadline).map_err(unreachable)?;
        *slot = Some(stream);
    }
    let mut waiting = n - me - 1;
    while waiting > 0 {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).map_err(|e| Error::Listen {
                    process: me,
                    address: topology.addresses[me].clone(),
                    cause: e.to_string(),
                })?;
                // The peer's index is only known from its handshake.
                match accept_handshake(&mut stream, me, n, fingerprint, deadline) {
                    Ok(peer) if sockets[peer].is_none() => {
                        sockets[peer] = Some(stream);
                        waiting -= 1;
                    }
                    Ok(peer) => {
                        return Err(Error::Config(format!(
                        "two processes claim to be process {peer}; check --process on every host"
                    )))
                    }
                    Err(HandshakeError::Mismatch(message)) => return Err(Error::Config(message)),
                    // Not a peer of ours (a port scanner, a stale process): ignore it.
                    Err(HandshakeError::Io) => {}
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing: Vec<String> = (me + 1..n)
                        .filter(|&p| sockets[p].is_none())
                        .map(|p| format!("{p} ({})", topology.addresses[p]))
                        .collect();
                    return Err(Error::Unreachable {
                        process: me,
                        peer: me + 1,
                        address: missing.join(", "),
                        seconds,
                        cause: "these processes never connected (are they started, with the same hosts file?)".into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(Error::Listen {
                    process: me,
                    address: topology.addresses[me].clone(),
                    cause: e.to_string(),
                })
            }
        }
    }
    Ok(sockets)
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(200))
}

fn write_header(stream: &mut TcpStream, me: usize, fingerprint: u64) -> std::io::Result<()> {
    let mut header = Vec::with_capacity(24);
    header.extend_from_slice(&MAGIC.to_le_bytes());
    header.extend_from_slice(&fingerprint.to_le_bytes());
    header.extend_from_slice(&(me as u64).to_le_bytes());
    stream.write_all(&header)
}

fn read_header(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<[u64; 3]> {
    stream.set_read_timeout(Some(remaining(deadline)))?;
    let mut raw = [0u8; 24];
    stream.read_exact(&mut raw)?;
    stream.set_read_timeout(None)?;
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    Ok([word(0), word(1), word(2)])
}

enum HandshakeError {
    /// The connection broke during the handshake.
    Io,
    Mismatch(String),
}

fn check_header(
    [magic, their_fingerprint, their_index]: [u64; 3],
    fingerprint: u64,
) -> std::result::Result<usize, String> {
    if magic != MAGIC {
        return Err("the peer is not a kindred cluster process".into());
    }
    if their_fingerprint != fingerprint {
        return Err(format!(
            "process {their_index} runs a different job (its arguments, input or binary differ); \
             start every process with the same command apart from --process"
        ));
    }
    Ok(their_index as usize)
}

/// Connecting side: introduce ourselves, then check the acceptor's answer.
fn handshake(
    stream: &mut TcpStream,
    me: usize,
    peer: usize,
    fingerprint: u64,
    deadline: Instant,
) -> std::result::Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    write_header(stream, me, fingerprint).map_err(|e| e.to_string())?;
    let header = read_header(stream, deadline).map_err(|e| format!("no handshake answer: {e}"))?;
    let index = check_header(header, fingerprint)?;
    if index != peer {
        return Err(format!(
            "the address of process {peer} is answered by process {index}"
        ));
    }
    Ok(())
}

/// Accepting side: read the connector's introduction, answer with ours.
fn accept_handshake(
    stream: &mut TcpStream,
    me: usize,
    processes: usize,
    fingerprint: u64,
    deadline: Instant,
) -> std::result::Result<usize, HandshakeError> {
    stream.set_nodelay(true).map_err(|_| HandshakeError::Io)?;
    let header = read_header(stream, deadline).map_err(|_| HandshakeError::Io)?;
    let index = check_header(header, fingerprint).map_err(|m| {
        // Answer anyway so that the connecting side reports the mismatch too.
        let _ = write_header(stream, me, fingerprint);
        HandshakeError::Mismatch(m)
    })?;
    if index <= me || index >= processes {
        return Err(HandshakeError::Mismatch(format!(
            "process {me} was contacted by a process claiming index {index}; \
             only processes {}..{} connect to it",
            me + 1,
            processes
        )));
    }
    write_header(stream, me, fingerprint).map_err(|_| HandshakeError::Io)?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_deliver_every_message_to_its_worker_in_sender_order() {
        let results = run(&Topology::local_threads(3), 1, |ex| {
            let me = ex.index();
            let mut sums = Vec::new();
            for round in 0..4u64 {
                let mut outbox = ex.outbox();
                for to in 0..ex.peers() {
                    outbox.to(to).u64(round * 100 + (me * 10 + to) as u64);
                }
                let got = ex.exchange(outbox)?;
                let values: Vec<u64> = got
                    .iter()
                    .map(|r| Reader::new(&r.bytes, r.from).u64())
                    .collect::<Result<_>>()?;
                sums.push(values);
            }
            Ok((me, sums, ex.stats()))
        })
        .unwrap();
        assert_eq!(results.len(), 3);
        for (me, sums, stats) in results {
            for (round, values) in sums.iter().enumerate() {
                let expected: Vec<u64> = (0..3)
                    .map(|from| round as u64 * 100 + (from * 10 + me) as u64)
                    .collect();
                assert_eq!(values, &expected);
            }
            assert_eq!(stats.rounds, 4);
            assert_eq!(stats.bytes_to_workers, 4 * 2 * 8);
            assert_eq!(stats.bytes_to_processes, 0);
        }
    }

    #[test]
    fn large_messages_arrive_whole() {
        let results = run(&Topology::local_threads(2), 1, |ex| {
            let mut outbox = ex.outbox();
            let big: Vec<f64> = (0..(CHUNK_BYTES / 8 * 2 + 5)).map(|i| i as f64).collect();
            outbox.to(1 - ex.index()).f64s(&big);
            let got = ex.exchange(outbox)?;
            let from_other = &got[1 - ex.index()];
            let mut back = Vec::new();
            Reader::new(&from_other.bytes, from_other.from).f64s_into(big.len(), &mut back)?;
            Ok(back == big)
        })
        .unwrap();
        assert_eq!(results, vec![true, true]);
    }

    #[test]
    fn a_failing_worker_stops_the_job_with_its_error() {
        let err = run(&Topology::local_threads(2), 1, |ex| {
            if ex.index() == 1 {
                return Err(Error::Config("worker 1 gives up".into()));
            }
            for _ in 0..3 {
                ex.barrier()?;
            }
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("worker 1 gives up"), "{err}");
    }
}
