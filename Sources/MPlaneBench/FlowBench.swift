// Flow metering benchmark (BENCHMARKS.md, "Passive flows"), run by Benchmarks/flow_bench.sh:
//   mplane-bench trace FILE CONVERSATIONS MEAN_PACKETS   writes a synthetic trace (snaplen 128)
//   mplane-bench flows DIR NAME [TABLE_SIZE]             meters it as flows-file does; JSON
import MPlane
import MPlaneCapture
import MPlaneIO
#if canImport(Glibc)
import Glibc
#endif

func traceCommand(_ args: [String]) -> Never {
    guard args.count == 3, let conversations = Int(args[1]), let mean = Int(args[2]) else {
        writeStandardError("usage: mplane-bench trace FILE CONVERSATIONS MEAN_PACKETS\n")
        exit(2)
    }
    let fd = open(args[0], O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { writeStandardError("cannot write \(args[0])\n"); exit(1) }
    func save(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { writeStandardError("write failed\n"); exit(1) }
            off += n
        }
    }
    var w = TraceWriter.synthetic(conversations: conversations, meanPackets: mean, window: 2_000, seed: 42, snaplen: 128) { save($0.drain()) }
    save(w.drain())
    close(fd)
    print("{\"packets\": \(w.packets), \"conversations\": \(conversations)}")
    exit(0)
}

func flowsCommand(_ args: [String]) -> Never {
    guard args.count >= 2 else {
        writeStandardError("usage: mplane-bench flows DIR NAME [TABLE_SIZE]\n")
        exit(2)
    }
    var settings = CaptureService.Settings()
    if args.count > 2, let n = Int(args[2]) { settings.flowTableSize = n }
    let clock = ContinuousClock()
    let t0 = clock.now
    do {
        let r = try CaptureService.meterFlows(directory: args[0], name: args[1], settings: settings)
        let d = clock.now - t0
        let wall = Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        let cpu = Double(r.summary.cpuNanoseconds) / 1e9
        print("{\"frames\": \(r.summary.frames), \"flows\": \(r.rows), \"evicted\": \(r.counters.evicted), "
              + "\"wall_s\": \(wall), \"cpu_s\": \(cpu), \"pps\": \(Double(r.summary.frames) / wall), "
              + "\"table_bytes\": \(r.tableBytes)}")
    } catch {
        writeStandardError("flows: \(error)\n")
        exit(1)
    }
    exit(0)
}
