//! A person's browser, as far as a login needs one: it keeps cookies, follows redirects, and
//! submits the self-posting form a broker's site answers with (ICICI Breeze sends its session
//! key back that way). Tests stop it before the step that reaches tokenhost, to forge, replay
//! or drop that step.
//!
//! Like a real browser, its cookies are kept per host, not per port: every server on
//! 127.0.0.1 sees them all. Secure cookies are sent to loopback over plain HTTP, as browsers
//! treat loopback as a secure origin.

use crate::server::{Response, request};
use std::sync::Mutex;

/// One request the browser is about to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// `GET` or `POST`.
    pub method: String,
    /// The full URL, query included.
    pub url: String,
    /// A form POST's fields (empty for a GET).
    pub form: Vec<(String, String)>,
}

impl Step {
    /// A GET of `url`.
    pub fn get(url: &str) -> Step {
        Step { method: "GET".into(), url: url.into(), form: Vec::new() }
    }

    /// This step's query parameters and form fields, in order.
    pub fn params(&self) -> Vec<(String, String)> {
        let query = self.url.split_once('?').map_or("", |(_, q)| q);
        let mut p = crate::server::parse_query(query.split('#').next().unwrap_or(""));
        p.extend(self.form.iter().cloned());
        p
    }

    /// The value of the parameter `name`, from the query or the form.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// This step with the parameter `name` set to `value` (added if missing), where it is.
    pub fn with(mut self, name: &str, value: &str) -> Step {
        if let Some(f) = self.form.iter_mut().find(|(k, _)| k == name) {
            f.1 = value.into();
            return self;
        }
        let (base, query) = self.url.split_once('?').map_or((self.url.as_str(), ""), |(b, q)| (b, q));
        let mut params = crate::server::parse_query(query);
        match params.iter_mut().find(|(k, _)| k == name) {
            Some(p) => p.1 = value.into(),
            None if self.method == "POST" => {
                self.form.push((name.into(), value.into()));
                return self;
            }
            None => params.push((name.into(), value.into())),
        }
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
        self.url = format!("{base}?{encoded}");
        self
    }
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Page {
    /// HTTP status (0: nothing could be read).
    pub status: u16,
    /// Headers, lower-case names, repeated ones kept.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Page {
    /// The first header called `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A browser with a cookie jar.
#[derive(Default)]
pub struct Browser {
    cookies: Mutex<Vec<(String, String)>>,
}

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Browser {
        Browser::default()
    }

    /// The cookies it holds, as `name=value` pairs.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.cookies.lock().unwrap().clone()
    }

    /// Forgets every cookie (another browser, a private window).
    pub fn clear_cookies(&self) {
        self.cookies.lock().unwrap().clear();
    }

    /// Makes one request, sending the cookies and keeping the ones set.
    pub fn request(&self, step: &Step) -> Page {
        let cookie = self.cookies().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(&step.form).finish();
        let mut headers = vec![("User-Agent", "tokenhost-test-browser")];
        if !cookie.is_empty() {
            headers.push(("Cookie", &cookie));
        }
        if step.method == "POST" {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
        }
        let (status, headers, body) = request(&step.method, &step.url, &headers, body.as_bytes());
        let mut jar = self.cookies.lock().unwrap();
        for (_, set) in headers.iter().filter(|(k, _)| k == "set-cookie") {
            let pair = set.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.trim().split_once('=') {
                jar.retain(|(k, _)| k != name);
                jar.push((name.to_string(), value.to_string()));
            }
        }
        Page { status, headers, body }
    }

    /// Where the browser goes next after `page` (got from `from`): a redirect's target, or the
    /// POST of a page's self-submitting form; `None` when the page is where it stops.
    pub fn next(&self, from: &str, page: &Page) -> Option<Step> {
        if matches!(page.status, 301 | 302 | 303 | 307) {
            return Some(Step::get(&absolute(from, page.header("location")?)));
        }
        let (action, form) = auto_form(&page.body)?;
        Some(Step { method: "POST".into(), url: absolute(from, &action), form })
    }

    /// Opens `url` and goes on as a browser would, until the next step is one `stop_at` picks
    /// (returned unmade, with the last page before it) or there is no next step (`None`).
    pub fn follow(&self, url: &str, stop_at: impl Fn(&Step) -> bool) -> (Page, Option<Step>) {
        let mut step = Step::get(url);
        for _ in 0..20 {
            let page = self.request(&step);
            match self.next(&step.url, &page) {
                Some(next) if stop_at(&next) => return (page, Some(next)),
                Some(next) => step = next,
                None => return (page, None),
            }
        }
        panic!("more than 20 redirects from {url}");
    }
}

/// A page that POSTs `fields` to `action` as soon as it loads, as brokers' sites do to hand a
/// login's result to the app's redirect URL.
pub fn auto_post_page(action: &str, fields: &[(&str, &str)]) -> Response {
    let escape = |s: &str| s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    let inputs: String = fields
        .iter()
        .map(|(k, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v)))
        .collect();
    Response::raw(
        200,
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><body onload=\"document.forms[0].submit()\">\
             <form method=\"post\" action=\"{}\">{inputs}<noscript><button>Continue</button></noscript></form>",
            escape(action)
        ),
    )
}

/// The action and hidden fields of a page's self-submitting POST form.
fn auto_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    if !html.contains("document.forms[0].submit()") {
        return None;
    }
    let form = &html[html.find("<form")?..];
    let attr = |tag: &str, name: &str| {
        let key = format!("{name}=\"");
        let start = tag.find(&key)? + key.len();
        Some(unescape(&tag[start..start + tag[start..].find('"')?]))
    };
    let head = &form[..form.find('>')?];
    if !attr(head, "method")?.eq_ignore_ascii_case("post") {
        return None;
    }
    let action = attr(head, "action")?;
    let fields = form
        .split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = &tag[..tag.find('>')?];
            Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default()))
        })
        .collect();
    Some((action, fields))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// `location` made absolute against `from`.
fn absolute(from: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme_end = from.find("://").map_or(0, |i| i + 3);
    let origin_end = from[scheme_end..].find('/').map_or(from.len(), |i| scheme_end + i);
    format!("{}{location}", &from[..origin_end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_self_posting_form() {
        let page = auto_post_page("http://127.0.0.1:9/cb?x=1", &[("API_Session", "a&b\"c"), ("k", "")]);
        let html = String::from_utf8(page.body).unwrap();
        let (action, fields) = auto_form(&html).unwrap();
        assert_eq!(action, "http://127.0.0.1:9/cb?x=1");
        assert_eq!(fields, vec![("API_Session".into(), "a&b\"c".into()), ("k".into(), String::new())]);
        assert!(auto_form("<form method=\"post\" action=\"/x\">").is_none());
    }

    #[test]
    fn steps_are_changed_where_their_parameters_are() {
        let s = Step::get("http://h/cb?code=1&state=s").with("state", "forged").with("extra", "y z");
        assert_eq!(s.url, "http://h/cb?code=1&state=forged&extra=y+z");
        assert_eq!(s.param("extra").as_deref(), Some("y z"));
        let p =
            Step { method: "POST".into(), url: "http://h/cb".into(), form: vec![("a".into(), "1".into())] }
                .with("a", "2")
                .with("b", "3");
        assert_eq!(p.form, vec![("a".into(), "2".into()), ("b".into(), "3".into())]);
        assert_eq!(absolute("http://127.0.0.1:5/a/b?c", "/start/x"), "http://127.0.0.1:5/start/x");
    }
}
