//! The audit trail as a subscriber sees it: the events under `audit::TARGET` and their fields.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use sessanger_core::{Permission, SessionManager, audit};
use sessanger_store_memory::MemoryStore;
use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span,
};

/// One audit event's fields, as text.
type Fields = BTreeMap<String, String>;

/// Keeps the fields of every audit event; other events pass by. A plain `Subscriber`, as the
/// core crate depends on `tracing` alone.
#[derive(Clone, Default)]
struct AuditEvents(Arc<Mutex<Vec<Fields>>>);

impl AuditEvents {
    fn with_action(&self, action: &str) -> Fields {
        let events = self.0.lock().unwrap();
        let found = events.iter().find(|e| e.get("action").map(String::as_str) == Some(action));
        found.cloned().unwrap_or_else(|| panic!("no `{action}` event among {events:?}"))
    }
}

struct Collect<'a>(&'a mut Fields);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for AuditEvents {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == audit::TARGET
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::new();
        event.record(&mut Collect(&mut fields));
        self.0.lock().unwrap().push(fields);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[tokio::test]
async fn registering_changing_and_removing_a_service_name_that_service_its_permissions_and_the_actor() {
    let events = AuditEvents::default();
    // A current-thread runtime: the default subscriber of this thread sees every await.
    let _guard = tracing::subscriber::set_default(events.clone());
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), "admin".parse().unwrap(), Duration::from_secs(60));
    let (record, _token) =
        manager.register_service("billing".parse().unwrap(), "Billing", vec![Permission::Read]).await.unwrap();
    manager.change_service_permissions(&record.id, vec![Permission::Write, Permission::Read]).await.unwrap();
    manager.remove_service(&record.id).await.unwrap();

    for (action, permissions) in
        [("service.register", "read"), ("service.update", "read,write"), ("service.remove", "")]
    {
        let event = events.with_action(action);
        assert_eq!(event.get("target_service").map(String::as_str), Some("billing"), "{action}: {event:?}");
        assert_eq!(event.get("permissions").map(String::as_str), Some(permissions), "{action}: {event:?}");
        assert_eq!(event.get("service").map(String::as_str), Some("admin"), "{action}: {event:?}");
        assert!(!event.contains_key("session") && !event.contains_key("user"), "{action}: {event:?}");
    }
}
