// Capture benchmark: `mplane-bench capture SECONDS`. A second thread floods 127.0.0.1 with
// small UDP datagrams while the capture counts them on lo (filter: that port); prints one
// JSON object. Needs CAP_NET_RAW. Run through `make bench-ping` (same privileges).
import MPlane
import MPlaneCapture
import MPlaneIO
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

final class Flood: Sendable {
    let sent = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
}

func captureBenchmark(_ args: [String]) -> Never {
    let seconds = args.first.flatMap { Int($0) }.map { max(1, $0) } ?? 3
    let port = UInt16.random(in: 40_000...60_000)
    let flood = Flood()
    let sender = Thread {
        let rx = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0), tx = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let len = socklen_t(MemoryLayout<sockaddr_in>.size)
        var size: Int32 = 64 << 20
        setsockopt(rx, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(4))
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(rx, $0, len) } }
        var sink = [UInt8](repeating: 0, count: 64)
        let payload = [UInt8](repeating: 0x61, count: 18)
        usleep(300_000)  // the capture opens first
        while !flood.stop.load(ordering: .relaxed) {
            let n = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(tx, payload, payload.count, 0, $0, len) }
            }
            if n == payload.count { flood.sent.add(1, ordering: .relaxed) }
            while recv(rx, &sink, sink.count, Int32(MSG_DONTWAIT)) > 0 {}
        }
        close(rx)
        close(tx)
    }
    sender.start()
    let clock = ContinuousClock()
    let t0 = clock.now
    let outcome: ([TrafficCounts], CaptureSummary)
    do {
        // One period more than the flood lasts: every datagram sent is inside the capture.
        let stopper = Thread { usleep(UInt32(seconds) * 1_000_000 + 300_000); flood.stop.store(true, ordering: .relaxed) }
        stopper.start()
        outcome = try CaptureService.measure(interface: "lo", filter: "udp port \(port)", seconds: seconds + 1)
        stopper.join()
    } catch {
        writeStandardError("capture benchmark: \(error)\n")
        exit(1)
    }
    sender.join()
    let wall = clock.now - t0
    let counted = outcome.0.reduce(UInt64(0)) { $0 + $1.udpPackets }
    let wallSeconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) * 1e-18
    let floodSeconds = Double(seconds)
    print("{\"mode\": \"capture\", \"sent\": \(flood.sent.load(ordering: .relaxed)), \"counted\": \(counted), "
        + "\"dropped\": \(outcome.1.dropped), \"frames_per_s\": \(Int(Double(counted) / floodSeconds)), "
        + "\"capture_thread_cpu_ms\": \(outcome.1.cpuNanoseconds / 1_000_000), "
        + "\"cpu_ns_per_frame\": \(counted == 0 ? 0 : outcome.1.cpuNanoseconds / Int64(counted)), \"wall_ms\": \(Int(wallSeconds * 1000))}")
    exit(0)
}

/// A plain thread running a closure once.
final class Thread: @unchecked Sendable {
    let body: @Sendable () -> Void
    private var tid = pthread_t()  // written by start(), read by join(), both on the caller's thread
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    func start() {
        let box = Unmanaged.passRetained(self)
        pthread_create(&tid, nil, { arg in
            Unmanaged<Thread>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
    }
    func join() { pthread_join(tid, nil) }
}
