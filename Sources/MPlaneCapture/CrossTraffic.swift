import MPlane
public import MPlaneProbe
import CSupport
import Synchronization

extension CaptureService {
    /// The filter of a cross-traffic count: everything but ICMP and ICMPv6 echo requests and
    /// replies (the probes, and other programs' pings with them), and the later fragments of
    /// ICMP messages and the fragments of ICMPv6 ones (a large probe's, which carry no type to
    /// tell).
    public static let crossTrafficFilter =
        "not ((icmp and (icmp[icmptype] == icmp-echo or icmp[icmptype] == icmp-echoreply))"
        + " or (ip proto 1 and ip[6:2] & 0x1fff != 0)"
        + " or (icmp6 and (ip6[40] == 128 or ip6[40] == 129))"
        + " or (ip6 and ip6[6] == 44 and ip6[40] == 58))"

    /// Counts the traffic on `interface` (see ``CrossTrafficStart``) with the counting path of
    /// `capture-<interface>`, on a thread of its own, until stopped.
    public static let crossTraffic: CrossTrafficStart = { interface in
        guard availability(interface: interface) == nil else { return nil }
        let run = CrossTrafficRun(interface: interface)
        return await run.start() ? run : nil
    }
}

/// One cross-traffic count in progress.
final class CrossTrafficRun: CrossTrafficCounter {
    let interface: String
    private let stopping = Atomic<Bool>(false)
    private let opened = Atomic<Int>(0)  // 0 not yet, 1 counting, -1 failed
    private let task = Mutex<Task<CrossTrafficCounts?, Never>?>(nil)

    init(interface: String) { self.interface = interface }

    /// Starts the count; true once it counts, false if it could not. Waits at most 100 ms for
    /// the capture to open, so that the measurement is not held up: where opening takes
    /// longer, the count starts a little after the measurement.
    func start() async -> Bool {
        var settings = CaptureService.Settings()
        settings.onOpen = { [self] in opened.store(1, ordering: .releasing) }
        let now = Timestamp(microsecondsSince1970: csupport_clock_ns(Int32(CSUPPORT_CLOCK_REALTIME)) / 1000)
        let plan = CapturePlan(source: .interface(interface), filter: CaptureService.crossTrafficFilter,
                               period: CaptureLoop.longestPeriod, periods: nil, start: now, settings: settings)
        let interface = self.interface
        let t = Task { [self] () -> CrossTrafficCounts? in
            let outcome = await ProbeThread.run(name: "mplane-cross") { [self] () -> CrossTrafficCounts? in
                var total = CrossTrafficCounts(interface: interface, packets: 0, octets: 0, dropped: 0)
                do throws(CaptureError) {
                    _ = try CaptureLoop.run(plan, meter: { Meter(linktype: $0, flows: nil) },
                                            shouldStop: { self.stopping.load(ordering: .acquiring) }) { _, c in
                        total.packets += c.ipPackets
                        total.octets += c.ipOctets
                        total.dropped += c.dropped
                    }
                    return total
                } catch {
                    // What was counted before a failure is still a count (its window shorter).
                    let counting = self.opened.load(ordering: .acquiring) == 1
                    self.opened.store(-1, ordering: .releasing)
                    return counting ? total : nil
                }
            }
            if outcome == nil { self.opened.store(-1, ordering: .releasing) }  // no thread
            return outcome ?? nil
        }
        task.withLock { $0 = t }
        for _ in 0..<100 {
            switch opened.load(ordering: .acquiring) {
            case 1: return true
            case -1: return false
            default: try? await Task.sleep(for: .milliseconds(1))
            }
        }
        return true
    }

    func stop() async -> CrossTrafficCounts? {
        stopping.store(true, ordering: .releasing)
        guard let t = task.withLock({ $0 }) else { return nil }
        return await t.value
    }
}
