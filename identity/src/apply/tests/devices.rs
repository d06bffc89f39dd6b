//! Binding an agent to a device.

use super::*;

#[test]
fn bind_agent_device_rejections() {
    use RejectReason::*;
    let alice = || human_actor("alice");
    let cases = [
        (
            bind("bot", "phone").by(alice()),
            PermissionDenied,
            "device phone belongs to human hana, not to agent bot's owner alice",
        ),
        (
            bind("bot", "tablet").by(alice()),
            DeviceDisabled,
            "device tablet is disabled",
        ),
        (
            bind("bot", "ghost").by(alice()),
            DeviceNotFound,
            "device ghost does not exist",
        ),
        (
            bind("bot", "laptop").by(human_actor("hana")),
            PermissionDenied,
            "only an admin or human alice may bind this agent",
        ),
        (
            bind("bot", "laptop").by(agent_actor("bot")),
            PermissionDenied,
            "only an admin or human alice may bind this agent",
        ),
        (
            bind("ghost", "laptop").by(alice()),
            AgentNotFound,
            "agent ghost does not exist",
        ),
    ];
    for (command, reason, message) in cases {
        check_rejected(session_world(), command, reason, message);
    }
}
