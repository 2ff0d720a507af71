public import MPlaneScheduler
import MPlanePing
import MPlaneCapture

extension ServiceFactoryRegistry {
    /// Every service kind the probe has: the built-in test services, ping and capture.
    public static var probe: ServiceFactoryRegistry {
        var r = ServiceFactoryRegistry.builtIn
        PingService.register(in: &r)
        CaptureService.register(in: &r)
        return r
    }
}
