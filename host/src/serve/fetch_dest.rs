//! `Sec-Fetch-Dest`, the header in which a browser says what a request
//! loads, as the request's resource type that extension rules and filters
//! match on; and back, for the IPC client, which sends an in-process
//! request's type to the daemon in the same header.

use http::HeaderMap;

use crate::plugins::extension::ResourceType;

/// The header.
pub const HEADER: &str = "sec-fetch-dest";

/// What a request loads, by its `Sec-Fetch-Dest`; a document when it does
/// not say.
pub fn resource_type(headers: &HeaderMap) -> ResourceType {
    let dest = headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("document");
    match dest {
        "document" | "iframe" | "frame" | "embed" | "object" => ResourceType::Document,
        "script" | "worker" | "sharedworker" | "serviceworker" | "audioworklet"
        | "paintworklet" => ResourceType::Script,
        "style" => ResourceType::Stylesheet,
        "image" => ResourceType::Image,
        "font" => ResourceType::Font,
        "audio" | "video" | "track" => ResourceType::Media,
        "websocket" => ResourceType::Websocket,
        "empty" => ResourceType::Xhr,
        _ => ResourceType::Other,
    }
}

/// The `Sec-Fetch-Dest` value that [`resource_type`] reads as `kind`.
pub fn for_resource(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Document => "document",
        ResourceType::Script => "script",
        ResourceType::Stylesheet => "style",
        ResourceType::Image => "image",
        ResourceType::Font => "font",
        ResourceType::Media => "video",
        ResourceType::Websocket => "websocket",
        ResourceType::Xhr => "empty",
        // A destination of the Fetch standard that no other type claims.
        ResourceType::Other => "report",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with(v: &'static str) -> ResourceType {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static(v));
        resource_type(&h)
    }

    #[test]
    fn sec_fetch_dest_sets_the_resource_type() {
        assert_eq!(with("script"), ResourceType::Script);
        assert_eq!(with("image"), ResourceType::Image);
        assert_eq!(with("empty"), ResourceType::Xhr);
        assert_eq!(with("manifest"), ResourceType::Other);
        assert_eq!(resource_type(&HeaderMap::new()), ResourceType::Document);
    }

    #[test]
    fn every_type_survives_the_round_trip() {
        for kind in [
            ResourceType::Document,
            ResourceType::Script,
            ResourceType::Stylesheet,
            ResourceType::Image,
            ResourceType::Font,
            ResourceType::Media,
            ResourceType::Websocket,
            ResourceType::Xhr,
            ResourceType::Other,
        ] {
            assert_eq!(with(for_resource(kind)), kind);
        }
    }
}
