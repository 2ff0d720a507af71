// Generated from shared/registry/core-registry.json by hand-run script; do not edit.
// The registries every process knows without reading a file or the network.

enum EmbeddedRegistries {
    /// The mPlane core registry, `http://ict-mplane.eu/registry/core`.
    static let core: StaticString = #"""
{
  "registry-format": "mplane-0",
  "registry-revision": 0,
  "registry-uri": "http://ict-mplane.eu/registry/core",
  "elements": [
    {
      "name": "start",
      "prim": "time",
      "desc": "Start time of an event/flow that may have a non-zero duration"
    },
    {
      "name": "end",
      "prim": "time",
      "desc": "End time of an event/flow that may have a non-zero duration"
    },
    {
      "name": "time",
      "prim": "time",
      "desc": "Time at which an single event occurred"
    },
    {
      "name": "duration.s",
      "prim": "natural",
      "desc": "Duration of an event/flow in seconds"
    },
    {
      "name": "duration.ms",
      "prim": "natural",
      "desc": "Duration of an event/flow in milliseconds"
    },
    {
      "name": "duration.us",
      "prim": "natural",
      "desc": "Duration of an event/flow in microseconds"
    },
    {
      "name": "duration.ns",
      "prim": "natural",
      "desc": "Duration of an event/flow in nanoseconds"
    },
    {
      "name": "source.ip4",
      "prim": "address",
      "desc": "Source IPv4 address of an event/flow, or the IPv4 address from which an active measurement was taken"
    },
    {
      "name": "source.ip6",
      "prim": "address",
      "desc": "Source IPv6 address of an event/flow, or the IPv6 address from which an active measurement was taken"
    },
    {
      "name": "source.port",
      "prim": "natural",
      "desc": "Source layer 4 port of an event/flow, or the port from which packets were sent when an active measurement was taken"
    },
    {
      "name": "source.interface",
      "prim": "string",
      "desc": "A locally-scoped identifier of an interface to which the source of an event/flow is attached, or from which an active measurement was taken"
    },
    {
      "name": "source.device",
      "prim": "string",
      "desc": "A locally-scoped identifier of a source device of an event/flow, or from which an active measurement was taken"
    },
    {
      "name": "source.as",
      "prim": "natural",
      "desc": "BGP AS number of the source of an event/flow, or AS originating an active measurement"
    },
    {
      "name": "destination.ip4",
      "prim": "address",
      "desc": "The destination IPv4 address of an event/flow, or the IPv4 address of the target of an active measurement"
    },
    {
      "name": "destination.ip6",
      "prim": "address",
      "desc": "The destination IPv6 address of an event/flow, or the IPv6 address of the target of an active measurement"
    },
    {
      "name": "destination.port",
      "prim": "natural",
      "desc": "The destination layer 4 port of an event/flow, or the port to which packets were sent when an active measurement was taken"
    },
    {
      "name": "destination.interface",
      "prim": "string",
      "desc": "A locally-scoped identifier of an interface to which the destination of an event/flow is attached, or the target interface of an active measurement"
    },
    {
      "name": "destination.device",
      "prim": "string",
      "desc": "A locally-scoped identifier of a destination device of an event/flow, or the target of an active measurement"
    },
    {
      "name": "destination.as",
      "prim": "natural",
      "desc": "BGP AS number of the destination of an event/flow, or AS target of an active measurement"
    },
    {
      "name": "destination.url",
      "prim": "url",
      "desc": "A URL identifying a target of an active measurement"
    },
    {
      "name": "observer.ip4",
      "prim": "address",
      "desc": "The IPv4 address of the observation point of a passive measurement"
    },
    {
      "name": "observer.ip6",
      "prim": "address",
      "desc": "The IPv6 address of the observation point of a passive measurement"
    },
    {
      "name": "observer.link",
      "prim": "string",
      "desc": "A locally-scoped identifier of the link on which a passive measurement was observed"
    },
    {
      "name": "observer.interface",
      "prim": "string",
      "desc": "A locally-scoped identifier of the interface on which a passive measurement was observed"
    },
    {
      "name": "observer.device",
      "prim": "string",
      "desc": "A locally-scoped identifier of the device on which a passive measurement was observed"
    },
    {
      "name": "observer.as",
      "prim": "natural",
      "desc": "BGP AS number of the observer of a passive measurement or looking glass"
    },
    {
      "name": "intermediate.ip4",
      "prim": "address",
      "desc": "IPv4 address of a given entity along the path of a measurement; often scoped by hops.ip"
    },
    {
      "name": "intermediate.ip6",
      "prim": "address",
      "desc": "IPv6 address of a given entity along the path of a measurement; often scoped by hops.ip"
    },
    {
      "name": "intermediate.port",
      "prim": "natural",
      "desc": "Layer 4 port on which a flow/event was observed on a given entity along the path; used for NAPT applications"
    },
    {
      "name": "intermedate.as",
      "prim": "natural",
      "desc": "BGP AS number of a given entity along the path of a measurement; often scoped by hops.as"
    },
    {
      "name": "octets.ip",
      "prim": "natural",
      "desc": "Count of octets at layer 3 (including IP headers) associated with a flow, event, or measurement"
    },
    {
      "name": "octets.tcp",
      "prim": "natural",
      "desc": "Count of octets at layer 4 (including TCP headers) associated with a flow, event, or measurement"
    },
    {
      "name": "octets.udp",
      "prim": "natural",
      "desc": "Count of octets at layer 4 (including UDP headers) associated with a flow, event, or measurement"
    },
    {
      "name": "octets.transport",
      "prim": "natural",
      "desc": "Count of octets at layer 4 (including all sub-network-layer headers) associated with a flow, event, or measurement"
    },
    {
      "name": "octets.layer5",
      "prim": "natural",
      "desc": "Count of octets at layer 5 (i.e., excluding network and transport layer headers) associated with a flow, event, or measurement"
    },
    {
      "name": "octets.layer7",
      "prim": "natural",
      "desc": "Count of octets at layer 7 (i.e., passed up to the application, excluding network and transport layer headers and octets in retransmitted packets) associated with a flow, event, or measurement"
    },
    {
      "name": "packets.ip",
      "prim": "natural",
      "desc": "Count of IP packets associated with flow, event, or measurement"
    },
    {
      "name": "packets.tcp",
      "prim": "natural",
      "desc": "Count of TCP segments associated with flow, event, or measurement"
    },
    {
      "name": "packets.udp",
      "prim": "natural",
      "desc": "Count of UDP segments associated with flow, event, or measurement"
    },
    {
      "name": "packets.transport",
      "prim": "natural",
      "desc": "Count of packets with a transport-layer header associated with a flow, event, or measurement"
    },
    {
      "name": "packets.layer5",
      "prim": "natural",
      "desc": "Count of packets with non-empty transport-layer payload associated with a flow, event, or measurement"
    },
    {
      "name": "packets.layer7",
      "prim": "natural",
      "desc": "Count of packets carrying unique data at layer 7 (i.e., packets.layer5 minus retransmissions) associated with a flow, event, or measurement"
    },
    {
      "name": "packets.duplicate",
      "prim": "natural",
      "desc": "Count of duplicated packets observed in a flow, event, or measurement"
    },
    {
      "name": "packets.outoforder",
      "prim": "natural",
      "desc": "Count of out-of-order packets observed in a flow, event, or measurement"
    },
    {
      "name": "packets.lost",
      "prim": "natural",
      "desc": "Count of packets observed or inferred as lost in a flow, event, or measurement"
    },
    {
      "name": "packets.unobserved",
      "prim": "natural",
      "desc": "Count of packets observed or inferred as delivered but unobserved in a flow, event, or measurement"
    },
    {
      "name": "flows",
      "prim": "natural",
      "desc": "Count of unidirectional flows (see RFC 7011) associated with an event or measurement"
    },
    {
      "name": "flows.bidirectional",
      "prim": "natural",
      "desc": "Count of bidirectional flows (see RFC 7011 and 5103) associated with an event or measurement"
    },
    {
      "name": "delay.twoway.icmp.us",
      "prim": "natural",
      "desc": "Singleton two-way delay in microseconds as measured by ICMP Echo Request/Reply (see RFC 792)"
    },
    {
      "name": "delay.twoway.icmp.us.min",
      "prim": "natural",
      "desc": "Minimum two-way delay in microseconds as measured by ICMP Echo Request/Reply (see RFC 792)"
    },
    {
      "name": "delay.twoway.icmp.us.mean",
      "prim": "natural",
      "desc": "Mean two-way delay as in microseconds measured by ICMP Echo Request/Reply (see RFC 792)"
    },
    {
      "name": "delay.twoway.icmp.us.50pct",
      "prim": "natural",
      "desc": "Median two-way delay in microseconds as measured by ICMP Echo Request/Reply (see RFC 792)"
    },
    {
      "name": "delay.twoway.icmp.us.max",
      "prim": "natural",
      "desc": "Maximum two-way delay in microseconds as measured by ICMP Echo Request/Reply (see RFC 792)"
    },
    {
      "name": "delay.twoway.icmp.count",
      "prim": "natural",
      "desc": "Count of valid ICMP Echo Replies received when measuring two-way delay using ICMP Echo Request/Reply (see RFC 792)"
    },
    {
      "name": "delay.oneway.owamp.us",
      "prim": "natural",
      "desc": "Singleton one-way delay along a path as measured by OWAMP (see RFC 3763) in microseconds"
    },
    {
      "name": "delay.oneway.owamp.us.min",
      "prim": "natural",
      "desc": "Minimum one-way delay along a path as measured by OWAMP (see RFC 3763) in microseconds"
    },
    {
      "name": "delay.oneway.owamp.us.mean",
      "prim": "natural",
      "desc": "Mean one-way delay along a path as measured by OWAMP (see RFC 3763) in microseconds"
    },
    {
      "name": "delay.oneway.owamp.us.50pct",
      "prim": "natural",
      "desc": "Median one-way delay along a path as measured by OWAMP (see RFC 3763) in microseconds"
    },
    {
      "name": "delay.oneway.owamp.us.max",
      "prim": "natural",
      "desc": "Maximum one-way delay along a path as measured by OWAMP (see RFC 3763) in microseconds"
    },
    {
      "name": "delay.oneway.owamp.count",
      "prim": "natural",
      "desc": "Count of samples for one-way delay measurements using OWAMP (see RFC 3763)"
    },
    {
      "name": "delay.queue.us",
      "prim": "natural",
      "desc": "Singleton measured or inferred delay attributable to queueing along a path in microseconds"
    },
    {
      "name": "delay.queue.us.min",
      "prim": "natural",
      "desc": "Minimum measured or inferred delay attributable to queueing along a path in microseconds"
    },
    {
      "name": "delay.queue.us.mean",
      "prim": "natural",
      "desc": "Mean measured or inferred delay attributable to queueing along a path in microseconds"
    },
    {
      "name": "delay.queue.us.50pct",
      "prim": "natural",
      "desc": "Median measured or inferred delay attributable to queueing along a path in microseconds"
    },
    {
      "name": "delay.queue.us.max",
      "prim": "natural",
      "desc": "Maximum measured or inferred delay attributable to queueing along a path in microseconds"
    },
    {
      "name": "delay.buffer.us",
      "prim": "natural",
      "desc": "Delay attributable to buffering at an endpoint in microseconds"
    },
    {
      "name": "delay.resolution.ms",
      "prim": "natural",
      "desc": "Delay from transaction start to completion of resolution of a name or URL to an address, in milliseconds"
    },
    {
      "name": "delay.firstbyte.ms",
      "prim": "natural",
      "desc": "Delay from transaction start to receipt of first byte of content at the initiator, in milliseconds"
    },
    {
      "name": "rtt.ms",
      "prim": "natural",
      "desc": "Round-trip time as measured or estimated at the sender in milliseconds"
    },
    {
      "name": "rtt.us",
      "prim": "natural",
      "desc": "Round-trip time as measured or estimated at the sender in microseconds"
    },
    {
      "name": "iat.ms",
      "prim": "natural",
      "desc": "Packet interarrival or event interoccurance time in milliseconds"
    },
    {
      "name": "iat.us",
      "prim": "natural",
      "desc": "Packet interarrival or event interoccurance time in microseconds"
    },
    {
      "name": "connectivity.ip",
      "prim": "boolean",
      "desc": "Assertion (or negation) that layer 3 connectivity between the identified source and destination is available"
    },
    {
      "name": "connectivity.as",
      "prim": "boolean",
      "desc": "Assertion (or negation) that control plane connectivity (i.e. BGP routability) between the identified source and destination is available"
    },
    {
      "name": "hops.ip",
      "prim": "natural",
      "desc": "Count of layer 3 hops or subhops along the identified path"
    },
    {
      "name": "hops.as",
      "prim": "natural",
      "desc": "Count of control-plane hops or subhops along the identified path"
    },
    {
      "name": "bandwidth.nominal.bps",
      "prim": "natural",
      "desc": "Nominal (advertised) bandwidth at a point or along a path in bits per second"
    },
    {
      "name": "bandwidth.nominal.kbps",
      "prim": "natural",
      "desc": "Nominal (advertised) bandwidth at a point or along a path in kilobits per second"
    },
    {
      "name": "bandwidth.nominal.Mbps",
      "prim": "natural",
      "desc": "Nominal (advertised) bandwidth at a point or along a path in megabits per second"
    },
    {
      "name": "bandwidth.partial.bps",
      "prim": "natural",
      "desc": "Partial bandwidth attributable to a given flow in bits per second"
    },
    {
      "name": "bandwidth.partial.kbps",
      "prim": "natural",
      "desc": "Partial bandwidth attributable to a given flow in kilobits per second"
    },
    {
      "name": "bandwidth.partial.Mbps",
      "prim": "natural",
      "desc": "Partial bandwidth attributable to a given flow in megabits per second"
    },
    {
      "name": "bandwidth.imputed.bps",
      "prim": "natural",
      "desc": "Bandwidth assumed to be available along a path according to measurement and heuristics in bits per second"
    },
    {
      "name": "bandwidth.imputed.kbps",
      "prim": "natural",
      "desc": "Bandwidth assumed to be available along a path according to measurement and heuristics in kilobits per second"
    },
    {
      "name": "bandwidth.imputed.Mbps",
      "prim": "natural",
      "desc": "Bandwidth assumed to be available along a path according to measurement and heuristics in megabits per second"
    },
    {
      "name": "content.url",
      "prim": "url",
      "desc": "A URL identifying some content, access to which is passively or actively measured"
    },
    {
      "name": "fps.nominal",
      "prim": "real",
      "desc": "Nominal frame rate in frames per second of the identified audio/video content"
    },
    {
      "name": "fps.achieved",
      "prim": "real",
      "desc": "Achieved frame rate in frames per second of the identified audio/video content"
    },
    {
      "name": "fps.achieved.min",
      "prim": "real",
      "desc": "Minumum achieved frame rate in frames per second of the identified audio/video content"
    },
    {
      "name": "fps.achieved.mean",
      "prim": "real",
      "desc": "Mean achieved frame rate in frames per second of the identified audio/video content"
    },
    {
      "name": "fps.achieved.max",
      "prim": "real",
      "desc": "Maximum achieved frame rate in frames per second of the identified audio/video content"
    },
    {
      "name": "sessions.transport",
      "prim": "natural",
      "desc": "Count of transport-layer sessions associated with an event"
    },
    {
      "name": "sessions.layer7",
      "prim": "natural",
      "desc": "Count of application-layer sessions associated with an event"
    },
    {
      "name": "cpuload",
      "prim": "real",
      "desc": "Normalized CPU load on the identified device"
    },
    {
      "name": "memload",
      "prim": "real",
      "desc": "Normalized memory load on the identified device"
    },
    {
      "name": "linkload",
      "prim": "real",
      "desc": "Normalized link load on the identified interface or link"
    },
    {
      "name": "bufferload",
      "prim": "real",
      "desc": "Normalized buffer load on the identified device"
    },
    {
      "name": "bufferstalls",
      "prim": "natural",
      "desc": "Count of buffer stalls (imputed playback quality degradation) associated with a flow/event"
    },
    {
      "name": "snr",
      "prim": "real",
      "desc": "Signal to noise ratio in decibels, either in a radio access network or in an audio transmission context"
    },
    {
      "name": "period.s",
      "prim": "natural",
      "desc": "DEPRECATED and to be removed before D1.4. Use temporal scopes instead."
    },
    {
      "name": "period.ms",
      "prim": "natural",
      "desc": "DEPRECATED and to be removed before D1.4. Use temporal scopes instead."
    },
    {
      "name": "period.us",
      "prim": "natural",
      "desc": "DEPRECATED and to be removed before D1.4. Use temporal scopes instead."
    },
    {
      "name": "period.ns",
      "prim": "natural",
      "desc": "DEPRECATED and to be removed before D1.4. Use temporal scopes instead."
    },
    {
      "name": "measurement.identifier",
      "prim": "string",
      "desc": "Free-form string identifying the implementation of the measurement on the component; often the name of the external program"
    },
    {
      "name": "measurement.revision",
      "prim": "natural",
      "desc": "Release or deployment serial number of the implementation of the measurement on the component"
    },
    {
      "name": "measurement.algorithm",
      "prim": "string",
      "desc": "Free-form string identifying the algorithm used for the measurement on the component"
    },
    {
      "name": "location.latitude",
      "prim": "real",
      "desc": "The latitude of the component expressed as a floating point number of degrees north of the equator"
    },
    {
      "name": "location.longitude",
      "prim": "real",
      "desc": "The longitude of the component expressed as a floating point number of degrees east of the standard meridian (on Earth, the Prime Meridian at Greenwich)"
    },
    {
      "name": "location.altitude",
      "prim": "real",
      "desc": "The altitude of the component expressed as a floating point number of meters above the standard zero altitude (on Earth, mean sea level)"
    },
    {
      "name": "location.civil",
      "prim": "string",
      "desc": "A free-form identifier of the civil location (postal address, city name, building name, etc) of the component"
    },
    {
      "name": "System_type",
      "prim": "string"
    },
    {
      "name": "System_ID",
      "prim": "string"
    },
    {
      "name": "System_version",
      "prim": "string"
    }
  ]
}
"""#

    /// The loopback test registry used by the reference implementation's loopback
    /// service, `http://mplane.corvid.ch/registry/loopback` (includes the core registry).
    static let loopback: StaticString = #"""
{
  "registry-format": "mplane-0",
  "registry-revision": 0,
  "registry-uri": "http://mplane.corvid.ch/registry/loopback",
  "includes": [
    "http://ict-mplane.eu/registry/core"
  ],
  "elements": [
    {
      "name": "test.input",
      "prim": "string",
      "desc": "Input string of the loopback test service"
    },
    {
      "name": "test.output",
      "prim": "string",
      "desc": "Output string of the loopback test service (a copy of test.input)"
    },
    {
      "name": "test.counter",
      "prim": "natural",
      "desc": "Row counter of the periodic test service (0, 1, 2, ...)"
    }
  ]
}
"""#

    /// The probe's own registry, `http://mplane-swift.invalid/registry/probe` (includes the
    /// core registry): the elements of the extended ping capabilities. The same text is
    /// shipped as `deploy/registry/probe-registry.json` for clients that preload registries.
    static let probe: StaticString = #"""
{
  "registry-format": "mplane-0",
  "registry-revision": 0,
  "registry-uri": "http://mplane-swift.invalid/registry/probe",
  "includes": [
    "http://ict-mplane.eu/registry/core"
  ],
  "elements": [
    {
      "name": "destination.ip4.set",
      "prim": "string",
      "desc": "IPv4 destinations to probe: comma-separated addresses and CIDR prefixes"
    },
    {
      "name": "destination.ip6.set",
      "prim": "string",
      "desc": "IPv6 destinations to probe: comma-separated addresses and CIDR prefixes"
    },
    {
      "name": "icmp.payload.octets",
      "prim": "natural",
      "desc": "ICMP echo payload size in octets (default 56)"
    },
    {
      "name": "icmp.timeout.ms",
      "prim": "natural",
      "desc": "How long a probe waits for its reply before it counts as lost, in milliseconds (default 1000)"
    },
    {
      "name": "ip.ttl",
      "prim": "natural",
      "desc": "IPv4 time to live / IPv6 hop limit of the probes (default 64)"
    },
    {
      "name": "ip.tos",
      "prim": "natural",
      "desc": "IPv4 type of service / IPv6 traffic class byte of the probes (default 0)"
    },
    {
      "name": "icmp.packets.late",
      "prim": "natural",
      "desc": "Replies that arrived after their probe had timed out (the probe stays counted as lost)"
    },
    {
      "name": "icmp.timestamp.source",
      "prim": "string",
      "desc": "How a delay was timed: kernel (kernel transmit and receive timestamps), kernel-rx (user-space send time, kernel receive timestamp) or user (user-space clock on both ends)"
    },
    {
      "name": "icmp.socket",
      "prim": "string",
      "desc": "The ICMP socket kind the probe used: datagram (unprivileged ICMP socket) or raw"
    },
    {
      "name": "icmp.targets.max",
      "prim": "natural",
      "desc": "The most destinations one specification may name"
    },
    {
      "name": "capture.filter",
      "prim": "string",
      "desc": "A BPF filter expression (pcap-filter(7)) selecting the packets a capture counts; empty for all (default)"
    },
    {
      "name": "capture.filter.octets.max",
      "prim": "natural",
      "desc": "The longest capture.filter the probe compiles, in octets"
    },
    {
      "name": "probe.jobs.max",
      "prim": "natural",
      "desc": "The most jobs (scheduled or running) the probe runs for one client at once"
    },
    {
      "name": "result.octets.max",
      "prim": "natural",
      "desc": "The most octets of finished results the probe keeps for redemption, all clients together"
    },
    {
      "name": "result.rows.max",
      "prim": "natural",
      "desc": "The most rows one result holds; a job that reaches it ends there"
    },
    {
      "name": "icmp.rate.max",
      "prim": "natural",
      "desc": "The most probes per second the probe sends, all active measurements together"
    },
    {
      "name": "icmp.rate.destination.max",
      "prim": "natural",
      "desc": "The most probes per second the probe sends to one destination, all active measurements together"
    },
    {
      "name": "capture.file",
      "prim": "string",
      "desc": "A trace file (pcap or pcapng) to meter, named relative to the probe's capture-dir; no path outside it is opened"
    },
    {
      "name": "ip.protocol",
      "prim": "natural",
      "desc": "The IP protocol number of a flow (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...)"
    },
    {
      "name": "packets.ip.forward",
      "prim": "natural",
      "desc": "IP packets of a flow from its initiator (source) to its responder (destination)"
    },
    {
      "name": "octets.ip.forward",
      "prim": "natural",
      "desc": "Octets at the IP layer (IP total length) of a flow from its initiator to its responder"
    },
    {
      "name": "packets.ip.reverse",
      "prim": "natural",
      "desc": "IP packets of a flow from its responder (destination) to its initiator (source)"
    },
    {
      "name": "octets.ip.reverse",
      "prim": "natural",
      "desc": "Octets at the IP layer (IP total length) of a flow from its responder to its initiator"
    },
    {
      "name": "rtt.responder.us",
      "prim": "natural",
      "desc": "TCP handshake, SYN to SYN/ACK as seen at the probe: the round trip from the probe to the responder and back, in microseconds"
    },
    {
      "name": "rtt.initiator.us",
      "prim": "natural",
      "desc": "TCP handshake, SYN/ACK to ACK as seen at the probe: the round trip from the probe to the initiator and back, in microseconds"
    },
    {
      "name": "packets.retransmitted.forward",
      "prim": "natural",
      "desc": "TCP segments from the initiator that carried sequence space already seen (retransmissions)"
    },
    {
      "name": "packets.retransmitted.reverse",
      "prim": "natural",
      "desc": "TCP segments from the responder that carried sequence space already seen (retransmissions)"
    },
    {
      "name": "packets.outoforder.forward",
      "prim": "natural",
      "desc": "TCP segments from the initiator that filled a gap in the sequence space (arrived after later data)"
    },
    {
      "name": "packets.outoforder.reverse",
      "prim": "natural",
      "desc": "TCP segments from the responder that filled a gap in the sequence space (arrived after later data)"
    },
    {
      "name": "flow.end.reason",
      "prim": "string",
      "desc": "Why a flow record was written: idle (idle timeout), active (interim record at the active timeout; the flow goes on), fin, rst, evicted (the flow table was full), end (the measurement ended)"
    },
    {
      "name": "flow.timeout.idle.s",
      "prim": "natural",
      "desc": "A flow with no packet for this many seconds has ended (default 300)"
    },
    {
      "name": "flow.timeout.active.s",
      "prim": "natural",
      "desc": "A flow that lasts this many seconds gets an interim record, and again after as long (default 1800)"
    },
    {
      "name": "flows.evicted",
      "prim": "natural",
      "desc": "Flows exported early because the flow table was full"
    },
    {
      "name": "packets.truncated",
      "prim": "natural",
      "desc": "Frames too short for the headers they announce, or with contradictory headers: counted, not decoded"
    },
    {
      "name": "flow.table.size",
      "prim": "natural",
      "desc": "The most flows one measurement's flow table holds"
    },
    {
      "name": "top.count",
      "prim": "natural",
      "desc": "How many hosts a top-talkers result lists"
    },
    {
      "name": "host.ip4",
      "prim": "address",
      "desc": "An IPv4 host"
    },
    {
      "name": "host.ip6",
      "prim": "address",
      "desc": "An IPv6 host"
    },
    {
      "name": "hosts.untracked",
      "prim": "natural",
      "desc": "Hosts a top-talkers measurement could not track because its host table was full"
    },
    {
      "name": "probe.schedule.error.us.50pct",
      "prim": "natural",
      "desc": "Median of how late the probe sent its probes against their schedule (actual minus due send time), microseconds"
    },
    {
      "name": "probe.schedule.error.us.99pct",
      "prim": "natural",
      "desc": "99th percentile of how late the probe sent its probes against their schedule, microseconds"
    },
    {
      "name": "probe.schedule.error.us.max",
      "prim": "natural",
      "desc": "The latest the probe sent a probe against its schedule, microseconds"
    },
    {
      "name": "probe.read.delay.us.50pct",
      "prim": "natural",
      "desc": "Median delay from the kernel's receive timestamp of a reply to the moment the probe read it, microseconds"
    },
    {
      "name": "probe.read.delay.us.99pct",
      "prim": "natural",
      "desc": "99th percentile of the delay from the kernel's receive timestamp of a reply to its read, microseconds"
    },
    {
      "name": "probe.read.delay.us.max",
      "prim": "natural",
      "desc": "The longest delay from the kernel's receive timestamp of a reply to its read, microseconds"
    },
    {
      "name": "probe.sent.late",
      "prim": "natural",
      "desc": "Probes sent more than 1 ms after their due time: the probe itself distorted their place in the schedule"
    },
    {
      "name": "icmp.samples.kernel",
      "prim": "natural",
      "desc": "Delay samples timed with kernel timestamps on both ends"
    },
    {
      "name": "icmp.samples.kernel-rx",
      "prim": "natural",
      "desc": "Delay samples timed with a user-space send time and a kernel receive timestamp"
    },
    {
      "name": "icmp.samples.user",
      "prim": "natural",
      "desc": "Delay samples timed with the user-space clock on both ends"
    },
    {
      "name": "clock.synchronised.start",
      "prim": "string",
      "desc": "Whether the system clock was synchronised when the measurement started, as the kernel reports it (adjtimex): yes, no, or unknown where the probe may not read it"
    },
    {
      "name": "clock.synchronised.end",
      "prim": "string",
      "desc": "Whether the system clock was synchronised when the measurement ended: yes, no, or unknown"
    },
    {
      "name": "clock.error.estimated.us",
      "prim": "natural",
      "desc": "The kernel's estimated error of the system clock at the end of the measurement, microseconds"
    },
    {
      "name": "clock.error.maximum.us",
      "prim": "natural",
      "desc": "The kernel's maximum error of the system clock at the end of the measurement, microseconds"
    },
    {
      "name": "clock.step.us",
      "prim": "natural",
      "desc": "How far the wall clock moved against the monotonic clock during the measurement, microseconds (slewing included)"
    },
    {
      "name": "clock.stepped",
      "prim": "boolean",
      "desc": "True when the wall clock moved during the measurement more than slewing (500 ppm, plus 1 ms) explains: it was stepped"
    },
    {
      "name": "flows.unreported",
      "prim": "natural",
      "desc": "Flows that ended after the result reached max-result-rows or max-result-bytes: counted, not reported"
    },
    {
      "name": "cross.interface",
      "prim": "string",
      "desc": "The interface the probes left by, whose other traffic the cross.* figures count"
    },
    {
      "name": "cross.packets.ip",
      "prim": "natural",
      "desc": "IP packets the probes' interface carried while the measurement ran, ICMP echo requests and replies left out"
    },
    {
      "name": "cross.octets.ip",
      "prim": "natural",
      "desc": "Octets at the IP layer the probes' interface carried while the measurement ran, ICMP echo requests and replies left out"
    },
    {
      "name": "cross.packets.unobserved",
      "prim": "natural",
      "desc": "Frames the kernel dropped from the cross-traffic count (the cross.* figures are low by at least this much)"
    },
    {
      "name": "probe.late",
      "prim": "boolean",
      "desc": "True for a probe sent more than 1 ms after its due time: the probe itself moved it in the schedule (its delay is still timed from the real send); a consumer that needs the schedule can drop it"
    }
  ]
}
"""#
}
