//! `blocklist`: an adblock-style list for sockhost.
//!
//! At init the list becomes declarative rules, which the host evaluates
//! natively; those requests never enter this plugin. The one thing rules
//! cannot express, stripping tracking parameters from a URL while keeping
//! the rest, is done by the on-request hook, registered only for top-level
//! documents and XHR where such parameters appear.

use sockhost_sdk::extension::{
    Extension, Registration, Request, RequestFilter, RequestVerdict, ResourceType,
};
use sockhost_sdk::log;

mod list;

struct Blocklist {
    list: list::List,
}

impl Extension for Blocklist {
    fn new() -> Self {
        let list = match list::parse(include_str!("../blocklist.txt")) {
            Ok(list) => list,
            Err(e) => {
                // The list is compiled in and unit-tested; if it is ever
                // broken, serve no rules rather than a partial list.
                log::error(&format!("blocklist.txt: {e}"));
                list::List::default()
            }
        };
        Blocklist { list }
    }

    fn init(&mut self) -> Registration {
        log::info(&format!(
            "{} rules, {} parameters to strip",
            self.list.rules.len(),
            self.list.remove_params.len()
        ));
        let request_filter = (!self.list.remove_params.is_empty()).then(|| RequestFilter {
            resource_types: vec![ResourceType::Document, ResourceType::Xhr],
            ..RequestFilter::any()
        });
        Registration {
            rules: std::mem::take(&mut self.list.rules),
            request_filter,
            response_filter: None,
        }
    }

    fn on_request(&mut self, request: Request) -> RequestVerdict {
        match list::strip_params(&request.url, &self.list.remove_params) {
            Some(clean) => RequestVerdict::Redirect(clean),
            None => RequestVerdict::Proceed(Vec::new()),
        }
    }
}

sockhost_sdk::register!(extension: Blocklist);
