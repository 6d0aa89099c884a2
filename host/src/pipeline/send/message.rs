//! The HTTP request message a sender sends: the caller's headers checked,
//! the target in the form the protocol wants.

use http::{HeaderMap, HeaderName, HeaderValue, Version};

use crate::host::{FetchError, FetchRequest};
use crate::net::connection::ReqBody;
use crate::pipeline::target::Target;

/// Most request headers a caller may add.
const MAX_REQUEST_HEADERS: usize = 256;

/// The caller's headers, checked (before any network work).
pub fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, FetchError> {
    if headers.len() > MAX_REQUEST_HEADERS {
        return Err(FetchError::InvalidHeader(format!(
            "list: more than {MAX_REQUEST_HEADERS} headers"
        )));
    }
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| FetchError::InvalidHeader(format!("name {name:?}")))?;
        let v = HeaderValue::from_str(value.trim())
            .map_err(|_| FetchError::InvalidHeader(format!("value of {name}")))?;
        map.append(n, v);
    }
    Ok(map)
}

/// `request` to `target` as an HTTP `version` message with `headers` and
/// `body`:
/// HTTP/2 and HTTP/3 carry the target as `:scheme` and `:authority`,
/// HTTP/1.1 as the path and a `Host` header.
pub fn build(
    request: &FetchRequest,
    body: ReqBody,
    target: &Target,
    headers: &HeaderMap,
    version: Version,
) -> Result<http::Request<ReqBody>, FetchError> {
    let builder = http::Request::builder().method(request.method.clone());
    let authority = target.authority();
    let builder = if version == Version::HTTP_11 {
        builder
            .uri(target.path.as_str())
            .header(http::header::HOST, &authority)
    } else {
        let scheme = &target.origin.scheme;
        builder
            .uri(format!("{scheme}://{authority}{}", target.path))
            .version(version)
    };
    let mut req = builder.body(body).map_err(|e| FetchError::InvalidUrl {
        url: request.url.clone(),
        why: e.to_string(),
    })?;
    if !headers.contains_key(http::header::USER_AGENT) {
        req.headers_mut().insert(
            http::header::USER_AGENT,
            HeaderValue::from_static(concat!("sockhost/", env!("CARGO_PKG_VERSION"))),
        );
    }
    for (n, v) in headers.iter() {
        req.headers_mut().append(n.clone(), v.clone());
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_checked() {
        let ok = header_map(&[(" X-A ".into(), " 1 ".into())]).unwrap();
        assert_eq!(ok["x-a"], "1");
        assert!(header_map(&[("bad name".into(), "v".into())]).is_err());
        assert!(header_map(&[("x".into(), "a\nb".into())]).is_err());
        let many = vec![("x".to_owned(), "v".to_owned()); MAX_REQUEST_HEADERS + 1];
        assert!(header_map(&many).is_err());
    }

    #[test]
    fn the_target_takes_the_protocols_form() {
        let request = FetchRequest::get("http://a.test:8080/p?q");
        let target = Target::parse(&request.url).unwrap();
        let empty = || crate::host::RequestBody::empty().into_upstream().0;
        let h1 = build(
            &request,
            empty(),
            &target,
            &HeaderMap::new(),
            Version::HTTP_11,
        )
        .unwrap();
        assert_eq!(h1.uri(), "/p?q");
        assert_eq!(h1.headers()[http::header::HOST], "a.test:8080");
        let h2 = build(
            &request,
            empty(),
            &target,
            &HeaderMap::new(),
            Version::HTTP_2,
        )
        .unwrap();
        assert_eq!(h2.uri(), "http://a.test:8080/p?q");
        assert!(h2.headers().get(http::header::HOST).is_none());
        assert!(h2.headers().contains_key(http::header::USER_AGENT));
        let mut mine = HeaderMap::new();
        mine.insert(http::header::USER_AGENT, HeaderValue::from_static("me"));
        let h3 = build(&request, empty(), &target, &mine, Version::HTTP_3).unwrap();
        assert_eq!(h3.headers()[http::header::USER_AGENT], "me");
        assert_eq!(h3.version(), Version::HTTP_3);
    }
}
