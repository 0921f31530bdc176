//! The NetFlow v5/v9 and IPFIX receiver: datagrams from exporters, decoded with
//! `netflow_parser`'s [`AutoScopedParser`] (templates scoped per exporter address and
//! observation domain / source id, as RFC 3954 and RFC 7011 say), into [`Flow`]s.
//!
//! `netflow_parser` is pinned at 1.0.5: 1.0.6 rejects whole v9 packets that end in zero
//! padding (Cisco ACI, PAN-OS), which 1.0.5 decodes; the corpus test holds both cases.
//!
//! # Invariants
//! - A datagram that does not decode is counted (`decode_errors`) and skipped; what decoded
//!   before the error in the same datagram is kept.
//! - A data set whose template is unknown is counted (`missing_template`), never guessed at.
//! - IPFIX variable-length elements of length 0, which the parser refuses, are rewritten
//!   before it sees them ([`super::varlen`]).
//! - Options data that carries a sampling rate scales the counters of the exporter's later
//!   records (per sampler id where records name one); the raw rate is kept in
//!   `netflow.sampling_rate`.
//! - A datagram of data sets only, all of templates with fixed-length elements, is read by
//!   the fast path ([`super::layouts`]) into the same flows the parser's path gives;
//!   everything else (templates, options, unknown templates, anything odd) goes through the
//!   parser.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use netflow_parser::scoped_parser::AutoScopedParser;
use netflow_parser::static_versions::v5::V5;
use netflow_parser::template_store::TemplateStore;
use netflow_parser::variable_versions::field_value::FieldValue;
use netflow_parser::variable_versions::ipfix::{FlowSetBody as IpfixBody, IPFix};
use netflow_parser::variable_versions::v9::{FlowSetBody as V9Body, V9};
use netflow_parser::{NetflowPacket, NetflowParser};
use tokio::sync::mpsc;

use super::layouts::{Layouts, Message, Version, u16_at};
use super::templates::FileTemplateStore;
use tokio_util::sync::CancellationToken;

use super::Flow;
use super::elements::{self, Header, Record, Target};
use crate::batcher::Item;
use crate::customer::Customers;
use crate::metrics::Metrics;

/// What one datagram gave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// NetFlow/IPFIX messages decoded.
    pub messages: u64,
    pub flows: u64,
    pub templates: u64,
    /// Data sets dropped because their template is unknown.
    pub missing_template: u64,
    /// 1 when the datagram (or its rest) did not decode, plus each data set that gave no
    /// record.
    pub errors: u64,
}

impl Decoded {
    /// Adds the counts of another datagram.
    pub fn add(&mut self, o: &Decoded) {
        self.messages += o.messages;
        self.flows += o.flows;
        self.templates += o.templates;
        self.missing_template += o.missing_template;
        self.errors += o.errors;
    }
}

/// What an exporter announced in options data: sampling rates, and when it booted.
#[derive(Debug, Default)]
struct Options {
    by_sampler: HashMap<u64, u64>,
    last: Option<u64>,
    boot_ms: Option<i64>,
}

impl Options {
    fn rate(&self, sampler: Option<u64>) -> u64 {
        sampler
            .and_then(|id| self.by_sampler.get(&id).copied())
            .or(self.last)
            .unwrap_or(1)
    }
}

/// Decoder state: templates per exporter, and sampling rates.
pub struct Decoder {
    parser: AutoScopedParser,
    varlen: super::varlen::Varlen,
    layouts: Layouts,
    /// Whether the fast path is taken (off only to compare it with the parser's).
    fast: bool,
    fast_datagrams: u64,
    sampling: HashMap<(IpAddr, u32), Options>,
    max_exporters: usize,
}

impl Decoder {
    /// `store` keeps templates across restarts; `max_exporters` bounds the state kept (the
    /// least recently heard exporter is forgotten first).
    pub fn new(store: Option<Arc<FileTemplateStore>>, max_exporters: usize) -> Decoder {
        let mut builder = NetflowParser::builder();
        let mut varlen = super::varlen::Varlen::default();
        let mut layouts = Layouts::default();
        if let Some(s) = store {
            let entries = s.entries();
            varlen.seed(entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
            layouts.seed(entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
            builder = builder.with_template_store(s as Arc<dyn TemplateStore>);
        }
        let parser = AutoScopedParser::try_with_builder(builder)
            .and_then(|p| p.with_max_sources(max_exporters.max(1)))
            .unwrap_or_default();
        Decoder {
            parser,
            varlen,
            layouts,
            fast: true,
            fast_datagrams: 0,
            sampling: HashMap::new(),
            max_exporters: max_exporters.max(1),
        }
    }

    /// This decoder with the fast path on or off (off, every datagram goes through the
    /// parser: to compare the two).
    pub fn with_fast_path(mut self, on: bool) -> Decoder {
        self.fast = on;
        self
    }

    /// Datagrams the fast path decoded.
    pub fn fast_datagrams(&self) -> u64 {
        self.fast_datagrams
    }

    /// Decodes one datagram from `from`, appending its flows to `out`.
    pub fn decode(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        now: DateTime<Utc>,
        out: &mut Vec<Flow>,
    ) -> Decoded {
        self.decode_each(from, data, now, &mut |fl| out.push(fl.clone()))
    }

    /// Decodes one datagram from `from`, handing each of its flows to `each` as it is
    /// read (to be encoded at once: a flow is not kept).
    pub fn decode_each(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        now: DateTime<Utc>,
        each: &mut impl FnMut(&Flow),
    ) -> Decoded {
        let data = normalize_v9(strip_padding(data));
        let data = &data[..];
        let arrival = Arrival {
            from: from.ip(),
            now_ns: super::unix_ns(now),
        };
        let mut each = |r: &mut Record, rates: Option<&Options>, hdr: &Header| {
            each(arrival.finish(r, rates, hdr))
        };
        if self.fast
            && let Some(d) = self.fast_path(from, data, &mut each)
        {
            self.fast_datagrams += 1;
            return d;
        }
        let mut d = Decoded::default();
        let rewritten = self.varlen.rewrite(from, data);
        let result = self.parser.parse_from_source(from, &rewritten);
        if let Some(e) = &result.error {
            tracing::debug!(exporter = %from, error = %e, "netflow datagram did not decode");
            d.errors = 1;
        }
        self.layouts.learn(from, data, result.error.is_none());
        let mut flows = 0;
        let mut each = |r: &mut Record, rates: Option<&Options>, hdr: &Header| {
            flows += 1;
            each(r, rates, hdr)
        };
        for packet in result.packets {
            d.messages += 1;
            match packet {
                NetflowPacket::V5(v5) => v5_flows(&v5, &mut each),
                NetflowPacket::V9(v9) => self.v9_flows(&v9, from.ip(), &mut d, &mut each),
                NetflowPacket::IPFix(ipfix) => {
                    self.ipfix_flows(&ipfix, from.ip(), &mut d, &mut each)
                }
                _ => d.errors += 1,
            }
        }
        d.flows = flows;
        d
    }

    /// The flows of a datagram that is one message of data sets whose layouts are all
    /// known and take their sets, or `None` (and no flow handed on) for the parser to
    /// decode it.
    fn fast_path(&self, from: SocketAddr, data: &[u8], each: &mut impl Emit) -> Option<Decoded> {
        let msg = Message::read(data)?;
        let layout = |id| self.layouts.get(from, msg.version, msg.domain, id);
        let mut sets = 0;
        for (id, body) in msg.sets() {
            if !layout(id)?.takes(body) {
                return None;
            }
            sets += 1;
        }
        if sets == 0 {
            return None;
        }
        let hdr = header(msg.export_secs, 0, msg.uptime_ms);
        let dataset = match msg.version {
            Version::V9 => "flow.netflow",
            Version::Ipfix => "flow.ipfix",
        };
        let rates = self.rates(from.ip(), msg.domain);
        let mut flows = 0;
        for (id, body) in msg.sets() {
            if let Some(l) = layout(id) {
                flows += l.read(body, dataset, |r| each(r, rates, &hdr));
            }
        }
        Some(Decoded {
            messages: 1,
            flows: flows as u64,
            ..Decoded::default()
        })
    }

    fn options(&mut self, exporter: IpAddr, domain: u32) -> &mut Options {
        if self.sampling.len() >= self.max_exporters
            && !self.sampling.contains_key(&(exporter, domain))
        {
            // Rare (more exporters than the bound): start over rather than grow.
            self.sampling.clear();
        }
        self.sampling.entry((exporter, domain)).or_default()
    }

    fn learn_options(&mut self, exporter: IpAddr, domain: u32, rec: &Record) {
        if let Some(rate) = rec.sampling_rate() {
            let s = self.options(exporter, domain);
            if let Some(id) = rec.sampler_id() {
                s.by_sampler.insert(id, rate);
            }
            s.last = Some(rate);
        }
        if let Some(boot) = rec.sys_init_ms() {
            self.options(exporter, domain).boot_ms = Some(boot);
        }
    }

    /// The sampling rates of an exporter, looked up once per data set rather than per record.
    fn rates(&self, exporter: IpAddr, domain: u32) -> Option<&Options> {
        self.sampling.get(&(exporter, domain))
    }

    fn v9_flows(&mut self, v9: &V9, exporter: IpAddr, d: &mut Decoded, each: &mut impl Emit) {
        let hdr = header(v9.header.unix_secs, 0, Some(v9.header.sys_up_time));
        let domain = v9.header.source_id;
        for fs in &v9.flowsets {
            match &fs.body {
                V9Body::Template(t) => d.templates += t.templates.len() as u64,
                V9Body::OptionsTemplate(t) => d.templates += t.templates.len() as u64,
                V9Body::NoTemplate(_) => d.missing_template += 1,
                V9Body::OptionsData(o) => {
                    for rec in &o.fields {
                        let r = v9_record("flow.netflow", &rec.options_fields);
                        self.learn_options(exporter, domain, &r);
                    }
                }
                V9Body::Data(data) => {
                    let rates = self.rates(exporter, domain);
                    for rec in &data.fields {
                        each(&mut v9_record("flow.netflow", rec), rates, &hdr);
                    }
                }
                _ => {}
            }
        }
    }

    fn ipfix_flows(&mut self, m: &IPFix, exporter: IpAddr, d: &mut Decoded, each: &mut impl Emit) {
        let hdr = header(m.header.export_time, 0, None);
        let domain = m.header.observation_domain_id;
        for fs in &m.flowsets {
            match &fs.body {
                IpfixBody::Template(_)
                | IpfixBody::V9Template(_)
                | IpfixBody::OptionsTemplate(_)
                | IpfixBody::V9OptionsTemplate(_) => d.templates += 1,
                IpfixBody::Templates(t) => d.templates += t.len() as u64,
                IpfixBody::V9Templates(t) => d.templates += t.len() as u64,
                IpfixBody::OptionsTemplates(t) => d.templates += t.len() as u64,
                IpfixBody::V9OptionsTemplates(t) => d.templates += t.len() as u64,
                IpfixBody::NoTemplate(_) => d.missing_template += 1,
                IpfixBody::OptionsData(o) => {
                    for rec in &o.fields {
                        let r = ipfix_record(rec);
                        self.learn_options(exporter, domain, &r);
                    }
                }
                IpfixBody::V9OptionsData(o) => {
                    for rec in &o.fields {
                        let r = v9_record("flow.ipfix", &rec.options_fields);
                        self.learn_options(exporter, domain, &r);
                    }
                }
                IpfixBody::Data(data) => {
                    if data.fields.is_empty() {
                        // The parser refused a record of the set (a variable-length element
                        // of length 0 no longer is one: see `varlen`) and returns the set
                        // with no records: count it rather than lose it silently.
                        d.errors += 1;
                    }
                    let rates = self.rates(exporter, domain);
                    for rec in &data.fields {
                        each(&mut ipfix_record(rec), rates, &hdr);
                    }
                }
                IpfixBody::V9Data(data) => {
                    let rates = self.rates(exporter, domain);
                    for rec in &data.fields {
                        each(&mut v9_record("flow.ipfix", rec), rates, &hdr);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The times of a message header: export time (seconds and nanoseconds since the Unix
/// epoch) and the exporter's uptime in milliseconds.
fn header(secs: u32, nanos: u32, uptime_ms: Option<u32>) -> Header {
    Header {
        export_ms: i64::from(secs) * 1000 + i64::from(nanos.min(999_999_999) / 1_000_000),
        uptime_ms: uptime_ms.map(u64::from),
        boot_ms: None,
    }
}

/// Where the records of a message go: each with its exporter's sampling rates and the
/// message's header.
trait Emit: FnMut(&mut Record, Option<&Options>, &Header) {}

impl<F: FnMut(&mut Record, Option<&Options>, &Header)> Emit for F {}

/// The datagram a record came in.
struct Arrival {
    from: IpAddr,
    now_ns: Option<i64>,
}

impl Arrival {
    /// The flow of a data record, scaled by its exporter's sampling rate, with what every
    /// flow of a datagram gets: its exporter as observer, and the time it arrived when the
    /// record has none.
    fn finish<'r>(&self, r: &'r mut Record, rates: Option<&Options>, hdr: &Header) -> &'r Flow {
        let rate = rates.map_or(1, |s| s.rate(r.sampler_id()));
        let hdr = Header {
            boot_ms: rates.and_then(|s| s.boot_ms),
            ..*hdr
        };
        let fl = r.finish(&hdr, rate);
        fl.observer = Some(self.from);
        if fl.end.is_none() && fl.start.is_none() {
            fl.end = self.now_ns;
        }
        fl
    }
}

/// The datagram without the zero padding some exporters (Cisco ACI, PAN-OS) put after the
/// last flow set. Without this the parser reads the zeros as a next message of version 0
/// and reports an error for a datagram that decoded completely.
pub fn strip_padding(data: &[u8]) -> &[u8] {
    let end = match data.get(..4).map(|h| {
        (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        )
    }) {
        // IPFIX: the header gives the message length.
        Some((10, len)) => usize::from(len),
        // v9: walk the flow sets, each of which gives its length.
        Some((9, _)) => v9_sets(data).0,
        _ => return data,
    };
    match data.get(end..) {
        Some(rest) if !rest.is_empty() && rest.iter().all(|&b| b == 0) => &data[..end],
        _ => data,
    }
}

/// The whole flow sets of a v9 datagram after its header: (offset, set id, body).
fn v9_set_iter(data: &[u8]) -> impl Iterator<Item = (usize, u16, &[u8])> {
    let mut at = 20;
    std::iter::from_fn(move || {
        let (id, len) = (u16_at(data, at)?, usize::from(u16_at(data, at + 2)?));
        if len < 4 || at + len > data.len() {
            return None;
        }
        let set = (at, id, &data[at + 4..at + len]);
        at += len;
        Some(set)
    })
}

/// Where the whole flow sets of a v9 datagram end, and how many there are.
fn v9_sets(data: &[u8]) -> (usize, u16) {
    v9_set_iter(data).fold((20, 0u16), |(_, n), (at, _, body)| {
        (at + 4 + body.len(), n.saturating_add(1))
    })
}

/// The template records of a v9 template set's body: (template id, its field specifiers,
/// four bytes each), up to the first that does not fit.
fn template_records(body: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let id = u16_at(body, at)?;
        let n = usize::from(u16_at(body, at + 2)?);
        let fields = body.get(at + 4..at + 4 + 4 * n)?;
        at += 4 + fields.len();
        Some((id, fields))
    })
}

/// A v9 datagram as the parser must see it to read all of it: its header count at least its
/// number of flow sets, and no field of length 0 in its templates.
///
/// RFC 3954 counts records, and the parser reads that many *sets*; exporters that count
/// only data records (softflowd) announce fewer than the sets a datagram with templates
/// holds, and the parser then read the rest as another packet ("version 1024") and lost the
/// datagram's flows. The datagram is decoded by its length, as nfdump does; an incomplete
/// last set counts, so that the parser still reports it.
pub fn normalize_v9(data: &[u8]) -> Cow<'_, [u8]> {
    if data.len() < 20 || data[..2] != [0, 9] {
        return Cow::Borrowed(data);
    }
    let (end, sets) = v9_sets(data);
    let sets = sets.saturating_add(u16::from(end < data.len()));
    let data = without_empty_fields(data);
    if u16::from_be_bytes([data[2], data[3]]) >= sets {
        return data;
    }
    let mut fixed = data.into_owned();
    fixed[2..4].copy_from_slice(&sets.to_be_bytes());
    Cow::Owned(fixed)
}

/// A v9 datagram with the fields of length 0 taken out of its template sets. RFC 3954 has
/// no such fields, some exporters send them (type 0, length 0, as padding), and the parser
/// refuses the whole template, which lost every flow of it; a field of no bytes takes no
/// room in a record, so the template without it reads the same records. Anything this
/// reader does not understand is left to the parser.
fn without_empty_fields(data: &[u8]) -> Cow<'_, [u8]> {
    let empty = |fields: &[u8]| fields.chunks(4).any(|f| f[2..4] == [0, 0]);
    // The common case copies nothing.
    if !v9_set_iter(data)
        .any(|(_, id, body)| id == 0 && template_records(body).any(|(_, f)| empty(f)))
    {
        return Cow::Borrowed(data);
    }
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..20]);
    let mut end = 20;
    for (at, id, body) in v9_set_iter(data) {
        end = at + 4 + body.len();
        if id != 0 {
            out.extend_from_slice(&data[at..end]);
            continue;
        }
        let start = out.len();
        out.extend_from_slice(&data[at..at + 4]);
        let mut read = 0;
        for (tid, fields) in template_records(body) {
            read += 4 + fields.len();
            let kept: Vec<&[u8]> = fields.chunks(4).filter(|f| f[2..4] != [0, 0]).collect();
            out.extend_from_slice(&tid.to_be_bytes());
            out.extend_from_slice(&(kept.len() as u16).to_be_bytes());
            kept.iter().for_each(|f| out.extend_from_slice(f));
        }
        // Trailing padding of the set, as it was.
        out.extend_from_slice(&body[read..]);
        let Ok(new_len) = u16::try_from(out.len() - start) else {
            return Cow::Borrowed(data);
        };
        out[start + 2..start + 4].copy_from_slice(&new_len.to_be_bytes());
    }
    out.extend_from_slice(&data[end..]);
    Cow::Owned(out)
}

fn v9_record(
    dataset: &'static str,
    rec: &[(
        netflow_parser::variable_versions::v9::lookup::V9Field,
        FieldValue,
    )],
) -> Record {
    let mut r = Record::new(dataset);
    for (field, v) in rec {
        r.set(elements::v9_target(*field), v);
    }
    r
}

fn ipfix_record(
    rec: &[(
        netflow_parser::variable_versions::ipfix::lookup::IPFixField,
        FieldValue,
    )],
) -> Record {
    let mut r = Record::new("flow.ipfix");
    for (field, v) in rec {
        r.set(elements::ipfix_target(field), v);
    }
    r
}

/// NetFlow v5: fixed records, times relative to the exporter's uptime.
fn v5_flows(v5: &V5, each: &mut impl Emit) {
    let h = &v5.header;
    let hdr = header(h.unix_secs, h.unix_nsecs, Some(h.sys_up_time));
    // The top two bits are the sampling mode, the other 14 the interval.
    let rate = u64::from(h.sampling_interval & 0x3fff);
    let rates = Options {
        last: Some(rate),
        ..Options::default()
    };
    for r in &v5.flowsets {
        let mut rec = Record::new("flow.netflow");
        let n = |x: u64| {
            FieldValue::DataNumber(
                netflow_parser::variable_versions::field_value::DataNumber::U64(x),
            )
        };
        rec.set(Ok(Target::SrcIp), &FieldValue::Ip4Addr(r.src_addr));
        rec.set(Ok(Target::DstIp), &FieldValue::Ip4Addr(r.dst_addr));
        rec.set(
            Ok(Target::Field("netflow.next_hop")),
            &FieldValue::Ip4Addr(r.next_hop),
        );
        rec.set(Ok(Target::SrcPort), &n(r.src_port.into()));
        rec.set(Ok(Target::DstPort), &n(r.dst_port.into()));
        rec.set(Ok(Target::Proto), &n(r.protocol_number.into()));
        rec.set(Ok(Target::Bytes), &n(r.d_octets.into()));
        rec.set(Ok(Target::Packets), &n(r.d_pkts.into()));
        rec.set(Ok(Target::TcpFlags), &n(r.tcp_flags.into()));
        rec.set(Ok(Target::StartUptime), &n(r.first.into()));
        rec.set(Ok(Target::EndUptime), &n(r.last.into()));
        rec.set(
            Ok(Target::Field("observer.ingress.interface.id")),
            &n(r.input.into()),
        );
        rec.set(
            Ok(Target::Field("observer.egress.interface.id")),
            &n(r.output.into()),
        );
        rec.set(Ok(Target::Field("source.as.number")), &n(r.src_as.into()));
        rec.set(
            Ok(Target::Field("destination.as.number")),
            &n(r.dst_as.into()),
        );
        each(&mut rec, Some(&rates), &hdr);
    }
}

/// Bytes of events after which an item is sent: datagrams already waiting are encoded into
/// the item of the one before until it holds this much (a busy listener sends the batcher
/// fewer, larger items: an item per datagram cost a wakeup of the batcher per datagram). It
/// bounds, with the channel's capacity in items, the memory a slow batcher makes wait.
pub const ITEM_BYTES: usize = 32 * 1024;

/// A listener's state shared with its receive thread.
pub struct Receiver {
    pub name: String,
    pub decoder: Decoder,
    pub customer: Option<String>,
    pub customers: Arc<Customers>,
    pub agent_customer: Option<String>,
    pub metrics: Arc<Metrics>,
}

/// Receives datagrams until `shutdown` ([`crate::udp::Datagrams`]: a thread of its own and a
/// bounded queue) and decodes them on this thread, sending their events to the batcher: the
/// events of a datagram and of those already waiting behind it in one item (up to
/// [`ITEM_BYTES`]). The send waits when the batcher is behind, and the queue absorbs the
/// wait. Kernel overruns and a full queue are counted, in datagrams
/// (`reason="udp_overrun"`, `"queue_full"`).
pub fn run(sock: UdpSocket, mut rx: Receiver, tx: mpsc::Sender<Item>, shutdown: CancellationToken) {
    let reason = |r: &str| {
        rx.metrics
            .events_dropped
            .get_or_create(&vec![
                ("listener", rx.name.clone()),
                ("reason", r.to_owned()),
            ])
            .clone()
    };
    let (overrun, full) = (reason("udp_overrun"), reason("queue_full"));
    let received = rx
        .metrics
        .events_received
        .get_or_create(&crate::metrics::listener_label(&rx.name))
        .clone();
    let mut datagrams = match crate::udp::Datagrams::spawn(
        &rx.name, sock, 65_536, overrun, full, shutdown,
    ) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(listener = %rx.name, error = %e, "cannot start the netflow receiver");
            return;
        }
    };
    // Room for one more datagram's events past the bound.
    let item = || crate::batcher::writer(ITEM_BYTES + 64 * super::EVENT_BYTES);
    let mut events = item();
    // Counts of consecutive datagrams of one exporter, added to its metrics together.
    let mut counts: Option<(IpAddr, Decoded)> = None;
    let mut next = datagrams.blocking_recv();
    while let Some((buf, from)) = next {
        let now = Utc::now();
        let map = rx.customers.load();
        let customer = map.attribute(
            rx.customer.as_deref(),
            from.ip(),
            rx.agent_customer.as_deref(),
        );
        let d = rx.decoder.decode_each(from, &buf, now, &mut |fl| {
            fl.encode(now, customer, &mut events)
        });
        datagrams.give_back(buf);
        match &mut counts {
            Some((ip, sum)) if *ip == from.ip() => sum.add(&d),
            _ => {
                if let Some((ip, sum)) = counts.replace((from.ip(), d)) {
                    rx.metrics.netflow(&ip.to_string(), &sum);
                }
            }
        }
        received.inc_by(d.flows);
        next = match datagrams.try_recv() {
            Some(more) if events.size() < ITEM_BYTES => Some(more),
            more => {
                if let Some((ip, sum)) = counts.take() {
                    rx.metrics.netflow(&ip.to_string(), &sum);
                }
                if events.count() > 0
                    && tx
                        .blocking_send(Item::Encoded(std::mem::replace(&mut events, item())))
                        .is_err()
                {
                    datagrams.join();
                    return;
                }
                more.or_else(|| datagrams.blocking_recv())
            }
        };
    }
    datagrams.join();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template with fields of length 0 (type 0, as padding) lost every flow of it.
    #[test]
    fn v9_template_with_zero_length_fields_keeps_its_flows() {
        let mut d = vec![0, 9, 0, 2];
        d.extend_from_slice(&[0; 16]);
        // Template 256: protocol (4, 1 byte), a field 0 of length 0, packets (2, 4 bytes).
        d.extend_from_slice(&[0, 0, 0, 20, 1, 0, 0, 3, 0, 4, 0, 1, 0, 0, 0, 0, 0, 2, 0, 4]);
        d.extend_from_slice(&[1, 0, 0, 12, 6, 0, 0, 0, 7, 0, 0, 0]);
        let fixed = normalize_v9(&d);
        assert_eq!(
            &fixed[20..36],
            &[0, 0, 0, 16, 1, 0, 0, 2, 0, 4, 0, 1, 0, 2, 0, 4]
        );
        assert_eq!(&fixed[36..], &d[40..]);
        let mut flows = Vec::new();
        let dec = Decoder::new(None, 4).decode(
            "192.0.2.1:2055".parse().expect("addr"),
            &d,
            Utc::now(),
            &mut flows,
        );
        assert_eq!((dec.flows, dec.errors), (1, 0), "{dec:?}");
        assert_eq!((flows[0].proto, flows[0].packets), (Some(6), 7));
    }

    /// softflowd counts only data records in a v9 header: a datagram of five template sets
    /// and one data set says "1", and the parser read the data set as another packet.
    #[test]
    fn softflowd_v9_datagram_dropped_whole_when_count_is_data_records_only() {
        let mut d = vec![0, 9, 0, 1];
        d.extend_from_slice(&[0; 16]);
        for _ in 0..5 {
            d.extend_from_slice(&[0, 0, 0, 8, 4, 0, 0, 0]);
        }
        d.extend_from_slice(&[4, 0, 0, 8, 1, 2, 3, 4]);
        let fixed = normalize_v9(&d);
        assert_eq!(&fixed[2..4], &[0, 6]);
        assert_eq!(&fixed[4..], &d[4..]);
        // A header that already counts enough is left as it is (no copy).
        d[3] = 40;
        assert!(matches!(normalize_v9(&d), Cow::Borrowed(_)));
        // A truncated last set still counts, so the parser reports it.
        d[3] = 1;
        d.extend_from_slice(&[4, 0, 0, 200]);
        assert_eq!(&normalize_v9(&d)[2..4], &[0, 7]);
    }
}
