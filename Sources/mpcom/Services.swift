import MPlaneProbe
import MPlanePing
import MPlaneCapture

/// The probe is assembled here: every service kind `mpcom` offers is registered in this one
/// place (a new kind of measurement is one more line, and a target of its own).
extension ServiceFactoryRegistry {
    /// The built-in test services (`loopback`, `counter`), `ping` and `capture`.
    static var probe: ServiceFactoryRegistry {
        var r = ServiceFactoryRegistry.builtIn
        PingService.register(in: &r, crossTraffic: CaptureService.crossTraffic)
        CaptureService.register(in: &r)
        return r
    }
}
