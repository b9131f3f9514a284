//! Which cards the page shows: a search by name, a filter by status and a
//! page of [`PAGE_SIZE`] cards (issue 20), read from the page's query
//! (`?q=jardin&status=alarm&page=2&lang=en`), so that a hoster's page for
//! 10,000 structures stays small and readable while an association's dozen
//! stays the one glance it was: below [`SMALL_BOARD`] structures there is no
//! form, no filter and no paging.
//!
//! Everything here is plain links and a GET form: no JavaScript.

use std::fmt::Write;

use crate::usage::{Attention, Row};

use super::html::escape;
use super::i18n::Lang;

/// Cards per page.
pub const PAGE_SIZE: usize = 50;

/// Up to this many structures, the page shows every card and no search,
/// filter or paging: one glance.
pub const SMALL_BOARD: usize = 12;

/// The status filter: one level of [`Attention`], or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filter {
    /// Every structure.
    #[default]
    All,
    /// Only those at this level.
    Only(Attention),
}

impl Filter {
    /// Reads `status=` of the query: `alarm`, `act`, `watch`, `ok`, or
    /// anything else for all.
    pub fn parse(text: Option<&str>) -> Filter {
        match text.map(str::trim) {
            Some("alarm") => Filter::Only(Attention::Alarm),
            Some("act") => Filter::Only(Attention::Act),
            Some("watch") => Filter::Only(Attention::Watch),
            Some("ok") => Filter::Only(Attention::None),
            _ => Filter::All,
        }
    }

    /// Its value in the query ("" for all).
    pub fn code(self) -> &'static str {
        match self {
            Filter::All => "",
            Filter::Only(a) => code(a),
        }
    }

    fn admits(self, row: &Row) -> bool {
        match self {
            Filter::All => true,
            Filter::Only(a) => row.attention() == a,
        }
    }
}

fn code(a: Attention) -> &'static str {
    match a {
        Attention::Alarm => "alarm",
        Attention::Act => "act",
        Attention::Watch => "watch",
        Attention::None => "ok",
    }
}

/// What the reader asked to see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Part of a structure's name, any case ("" for all).
    pub search: String,
    /// The status filter.
    pub filter: Filter,
    /// The page, from 1.
    pub page: usize,
}

/// Every structure, the first page.
impl Default for View {
    fn default() -> View {
        View {
            search: String::new(),
            filter: Filter::All,
            page: 1,
        }
    }
}

impl View {
    /// The view of a query's `q`, `status` and `page` (missing or wrong
    /// values read as "all" and the first page).
    pub fn parse(q: Option<&str>, status: Option<&str>, page: Option<&str>) -> View {
        View {
            // A name is short: a longer search is cut, never an error.
            search: q.unwrap_or("").trim().chars().take(100).collect(),
            filter: Filter::parse(status),
            page: page
                .and_then(|p| p.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .max(1),
        }
    }

    /// Whether the reader narrowed the list.
    pub fn narrowed(&self) -> bool {
        !self.search.is_empty() || self.filter != Filter::All
    }
}

/// The rows a view selects, in the board's order, and where they sit.
#[derive(Debug)]
pub struct Selection<'a> {
    /// The cards of this page.
    pub shown: Vec<&'a Row>,
    /// How many rows match the search and filter (all pages).
    pub matching: usize,
    /// The page shown, from 1 (clamped to the last).
    pub page: usize,
    /// How many pages the matching rows make (at least 1).
    pub pages: usize,
    /// The index of the first card shown among the matching (from 0).
    pub first: usize,
}

/// Selects `rows` (in the board's order) for `view`.
pub fn select<'a>(rows: &'a [Row], view: &View) -> Selection<'a> {
    let needle = view.search.to_lowercase();
    let matching: Vec<&Row> = rows
        .iter()
        .filter(|r| view.filter.admits(r))
        .filter(|r| needle.is_empty() || r.usage.name.to_lowercase().contains(&needle))
        .collect();
    // A small board shows every card on one page, whatever the query says.
    let size = if rows.len() <= SMALL_BOARD {
        rows.len().max(1)
    } else {
        PAGE_SIZE
    };
    let pages = matching.len().div_ceil(size).max(1);
    let page = view.page.clamp(1, pages);
    let first = (page - 1) * size;
    let n = matching.len();
    let shown = matching.into_iter().skip(first).take(size).collect();
    Selection {
        shown,
        matching: n,
        page,
        pages,
        first,
    }
}

/// The link to `view` in `lang`: `?lang=fr&q=...&status=...&page=...`.
pub fn href(lang: Lang, view: &View) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("lang", lang.code());
    if !view.search.is_empty() {
        query.append_pair("q", &view.search);
    }
    if view.filter != Filter::All {
        query.append_pair("status", view.filter.code());
    }
    if view.page > 1 {
        query.append_pair("page", &view.page.to_string());
    }
    format!("?{}", query.finish())
}

/// The search form and the status filters, each with its count (a big
/// board only).
pub fn controls(html: &mut String, rows: &[Row], view: &View, lang: Lang) {
    let w = Words::of(lang);
    let _ = write!(
        html,
        "<form class=\"find\" method=\"get\" action=\"\" role=\"search\">\
         <input type=\"hidden\" name=\"lang\" value=\"{code}\">\
         <label for=\"q\">{label}</label> \
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{q}\" placeholder=\"{hint}\">",
        code = lang.code(),
        label = escape(w.search),
        q = escape(&view.search),
        hint = escape(w.search_hint),
    );
    if view.filter != Filter::All {
        let _ = write!(
            html,
            "<input type=\"hidden\" name=\"status\" value=\"{}\">",
            view.filter.code()
        );
    }
    let _ = writeln!(
        html,
        " <button type=\"submit\">{}</button></form>",
        escape(w.find)
    );
    html.push_str("<p class=\"filters\">");
    let count = |a: Attention| rows.iter().filter(|r| r.attention() == a).count();
    let all = View {
        search: view.search.clone(),
        filter: Filter::All,
        page: 1,
    };
    let chip = |html: &mut String, filter: Filter, class: &str, label: &str, n: usize| {
        let target = View {
            filter,
            ..all.clone()
        };
        let current = if filter == view.filter {
            " aria-current=\"true\""
        } else {
            ""
        };
        let _ = write!(
            html,
            "<a class=\"chip {class}\" href=\"{}\"{current}>{} <b>{}</b></a> ",
            escape(&href(lang, &target)),
            escape(label),
            escape(&lang.integer(n as u64))
        );
    };
    chip(html, Filter::All, "all", w.all, rows.len());
    for (a, class, label) in [
        (Attention::Alarm, "over", w.alarm),
        (Attention::Act, "late", w.act),
        (Attention::Watch, "near", w.watch),
        (Attention::None, "ok", w.ok),
    ] {
        chip(html, Filter::Only(a), class, label, count(a));
    }
    html.push_str("</p>\n");
}

/// "Structures 51 à 100 sur 1 234 (« jardin », à surveiller)" and the
/// links to the other pages; nothing when everything fits on one page and
/// nothing was narrowed.
pub fn position(html: &mut String, sel: &Selection<'_>, view: &View, lang: Lang) {
    let w = Words::of(lang);
    if sel.pages == 1 && !view.narrowed() {
        return;
    }
    let (from, to) = (sel.first + 1, sel.first + sel.shown.len());
    let text = match (lang, sel.matching) {
        (Lang::Fr, 0) => "Aucune structure ne correspond.".to_string(),
        (Lang::En, 0) => "No structure matches.".to_string(),
        (Lang::Fr, n) => format!(
            "Structures {} à {} sur {} qui correspondent.",
            lang.integer(from as u64),
            lang.integer(to as u64),
            lang.integer(n as u64)
        ),
        (Lang::En, n) => format!(
            "Structures {} to {} of {} matching.",
            lang.integer(from as u64),
            lang.integer(to as u64),
            lang.integer(n as u64)
        ),
    };
    let _ = write!(
        html,
        "<nav class=\"pages\" aria-label=\"{}\"><span>{}</span>",
        escape(w.pages),
        escape(&text)
    );
    let link = |html: &mut String, page: usize, label: &str, rel: &str| {
        let target = View {
            page,
            ..view.clone()
        };
        let _ = write!(
            html,
            " <a href=\"{}\" rel=\"{rel}\">{}</a>",
            escape(&href(lang, &target)),
            escape(label)
        );
    };
    if sel.page > 1 {
        link(html, sel.page - 1, w.previous, "prev");
    }
    if sel.pages > 1 {
        let _ = write!(
            html,
            " <span>{}</span>",
            escape(&match lang {
                Lang::Fr => format!("page {} sur {}", sel.page, sel.pages),
                Lang::En => format!("page {} of {}", sel.page, sel.pages),
            })
        );
    }
    if sel.page < sel.pages {
        link(html, sel.page + 1, w.next, "next");
    }
    if view.narrowed() {
        let _ = write!(
            html,
            " <a href=\"{}\">{}</a>",
            escape(&href(lang, &View::default())),
            escape(w.show_all)
        );
    }
    html.push_str("</nav>\n");
}

/// The totals under the summary: "Au total : 1,2 To utilisés sur 2 To
/// attribués (60 %), 45 ordinateurs." / "In all: 1.2 TB used of 2 TB
/// allotted (60%), 45 computers."
pub fn totals(rows: &[Row], lang: Lang) -> String {
    let used: u64 = rows.iter().map(|r| r.usage.used_bytes).sum();
    let quota: u64 = rows.iter().map(|r| r.usage.quota_bytes).sum();
    let pcs = rows
        .iter()
        .flat_map(|r| &r.usage.device_backups)
        .filter(|d| !d.revoked)
        .count() as u64;
    let percent = lang.percent(crate::usage::percent(used, quota));
    let (u, q, n) = (lang.bytes(used), lang.bytes(quota), lang.integer(pcs));
    match lang {
        Lang::Fr => format!(
            "Au total\u{a0}: {u} utilisés sur {q} attribués ({percent}), {n}\u{a0}ordinateur{}.",
            if pcs == 1 { "" } else { "s" }
        ),
        Lang::En => format!(
            "In all: {u} used of {q} allotted ({percent}), {n} computer{}.",
            if pcs == 1 { "" } else { "s" }
        ),
    }
}

/// The words of the controls, in each language.
#[derive(Debug)]
struct Words {
    search: &'static str,
    search_hint: &'static str,
    find: &'static str,
    all: &'static str,
    alarm: &'static str,
    act: &'static str,
    watch: &'static str,
    ok: &'static str,
    pages: &'static str,
    previous: &'static str,
    next: &'static str,
    show_all: &'static str,
}

impl Words {
    fn of(lang: Lang) -> &'static Words {
        match lang {
            Lang::Fr => &FR,
            Lang::En => &EN,
        }
    }
}

static FR: Words = Words {
    search: "Chercher une structure",
    search_hint: "nom de la structure",
    find: "Chercher",
    all: "Toutes",
    alarm: "Sauvegardes refusées",
    act: "À traiter",
    watch: "À surveiller",
    ok: "OK",
    pages: "Pages",
    previous: "← précédentes",
    next: "suivantes →",
    show_all: "tout afficher",
};

static EN: Words = Words {
    search: "Find a structure",
    search_hint: "structure name",
    find: "Find",
    all: "All",
    alarm: "Backups refused",
    act: "To act on",
    watch: "To watch",
    ok: "OK",
    pages: "Pages",
    previous: "← previous",
    next: "next →",
    show_all: "show all",
};

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_store::Usage;

    fn rows(n: usize) -> Vec<Row> {
        (0..n)
            .map(|i| {
                let u = Usage {
                    name: format!("asso-{i:05}"),
                    quota_bytes: 1000,
                    used_bytes: if i % 10 == 0 { 1000 } else { 10 },
                    snapshots: 0,
                    logical_bytes: 0,
                    last_backup: None,
                    devices: 0,
                    protected_bytes: 0,
                    device_backups: vec![],
                };
                Row::new(u, 0, 3)
            })
            .collect()
    }

    #[test]
    fn a_small_board_is_one_page_whatever_the_query() {
        let rows = rows(12);
        let sel = select(&rows, &View::parse(None, None, Some("3")));
        assert_eq!((sel.shown.len(), sel.pages, sel.page), (12, 1, 1));
    }

    #[test]
    fn a_big_board_pages_searches_and_filters() {
        let rows = rows(10_000);
        let sel = select(&rows, &View::default());
        assert_eq!(
            (sel.shown.len(), sel.pages, sel.matching),
            (PAGE_SIZE, 200, 10_000)
        );
        let last = select(&rows, &View::parse(None, None, Some("999")));
        assert_eq!((last.page, last.first), (200, 9_950));
        let over = select(&rows, &View::parse(None, Some("alarm"), None));
        assert_eq!(over.matching, 1_000);
        assert!(over.shown.iter().all(|r| r.attention() == Attention::Alarm));
        let found = select(&rows, &View::parse(Some("ASSO-0004"), None, None));
        assert_eq!(found.matching, 10, "asso-00040 to asso-00049");
        let none = select(&rows, &View::parse(Some("nobody"), None, None));
        assert_eq!((none.matching, none.shown.len(), none.pages), (0, 0, 1));
    }

    #[test]
    fn links_keep_the_view_and_escape_the_search() {
        let view = View::parse(Some("Les Amis & <co>"), Some("watch"), Some("2"));
        assert_eq!(
            href(Lang::Fr, &view),
            "?lang=fr&q=Les+Amis+%26+%3Cco%3E&status=watch&page=2"
        );
        assert_eq!(href(Lang::En, &View::default()), "?lang=en");
    }
}
