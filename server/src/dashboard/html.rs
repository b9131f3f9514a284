//! HTML escaping, below the page, its controls and the chart: every text
//! that is not a literal of the dashboard's code goes through [`escape`]
//! (subscriber and device names are chosen by people; a search is typed by
//! anyone). Imports nothing.

/// Escapes text for HTML content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
