//! A [`FetchRequest`] as the daemon takes it: an HTTP/2 request whose
//! `:scheme` and `:authority` are the target's (the absolute form of
//! HTTP/2), its headers checked as an in-process fetch checks them, the
//! hop-by-hop ones left out.

use http::{header, Version};

use crate::host::{FetchError, FetchRequest, RequestBody};
use crate::net::connection::ReqBody;
use crate::pipeline::send::message::header_map;
use crate::pipeline::target::Target;
use crate::serve::{fetch_dest, hop};

/// What the client sends the daemon as a request body: bytes, or a
/// stream sent with HTTP/2's flow control as backpressure.
pub(crate) type DaemonBody = ReqBody;

/// `request` for the daemon; the URL's origin, for errors.
pub(crate) fn to_daemon(
    request: FetchRequest,
) -> Result<(http::Request<DaemonBody>, String), FetchError> {
    let target = Target::parse(&request.url)?;
    let mut headers = header_map(&request.headers)?;
    hop::strip(&mut headers);
    // HTTP/2 carries it as :authority.
    headers.remove(header::HOST);
    // The daemon reads the request's resource type where browsers say it.
    if !headers.contains_key(fetch_dest::HEADER) {
        headers.insert(
            fetch_dest::HEADER,
            http::HeaderValue::from_static(fetch_dest::for_resource(request.resource_type)),
        );
    }
    let uri = format!(
        "{}://{}{}",
        target.origin.scheme,
        target.authority(),
        target.path
    );
    let mut out = http::Request::builder()
        .method(request.method)
        .uri(uri)
        .version(Version::HTTP_2)
        .body(daemon_body(request.body))
        .map_err(|e| FetchError::InvalidUrl {
            url: request.url.clone(),
            why: e.to_string(),
        })?;
    *out.headers_mut() = headers;
    let origin = format!(
        "{}://{}:{}",
        target.origin.scheme, target.origin.host, target.origin.port
    );
    Ok((out, origin))
}

/// The request body as the daemon gets it: everything the client does
/// with a request's body is here.
fn daemon_body(body: RequestBody) -> DaemonBody {
    body.into_upstream().0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_goes_in_absolute_form_without_hop_by_hop_headers() {
        let mut r = FetchRequest::get("https://www.test:8443/a?b=1");
        r.method = http::Method::POST;
        r.body = "x=1".into();
        r.headers = vec![
            ("Accept".into(), "*/*".into()),
            ("Connection".into(), "close, x-private".into()),
            ("X-Private".into(), "1".into()),
            ("Host".into(), "elsewhere.test".into()),
        ];
        let (req, origin) = to_daemon(r).unwrap();
        assert_eq!(origin, "https://www.test:8443");
        assert_eq!(req.uri(), "https://www.test:8443/a?b=1");
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.version(), Version::HTTP_2);
        let names: Vec<&str> = req.headers().keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["accept", "sec-fetch-dest"]);
        assert_eq!(req.headers()["sec-fetch-dest"], "document");
        let mut script = FetchRequest::get("http://www.test/");
        script.resource_type = crate::plugins::extension::ResourceType::Script;
        let default_port = to_daemon(script).unwrap();
        assert_eq!(default_port.0.headers()["sec-fetch-dest"], "script");
        assert_eq!(default_port.0.uri(), "http://www.test/");
        assert_eq!(default_port.1, "http://www.test:80");
    }

    #[test]
    fn bad_urls_and_headers_fail_as_in_process() {
        let e = to_daemon(FetchRequest::get("ftp://www.test/")).unwrap_err();
        assert!(matches!(e, FetchError::InvalidUrl { .. }), "{e}");
        let mut r = FetchRequest::get("http://www.test/");
        r.headers.push(("bad name".into(), "v".into()));
        let e = to_daemon(r).unwrap_err();
        assert!(matches!(e, FetchError::InvalidHeader(_)), "{e}");
    }
}
