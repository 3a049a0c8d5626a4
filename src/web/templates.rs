//! Handlebars templates, built into the binary; `DONORCARE_TEMPLATES_DIR` may override any of
//! them by file name for a local look.

use anyhow::Context;
use handlebars::Handlebars;

/// Every built-in template: name and source.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("base", include_str!("../../templates/base.hbs")),
    ("home", include_str!("../../templates/home.hbs")),
    ("setup", include_str!("../../templates/setup.hbs")),
    ("setup_done", include_str!("../../templates/setup_done.hbs")),
    ("message", include_str!("../../templates/message.hbs")),
    ("login", include_str!("../../templates/login.hbs")),
    ("invite", include_str!("../../templates/invite.hbs")),
    ("letters", include_str!("../../templates/letters.hbs")),
];

/// The stylesheet of every page, served at `/static/app.css`.
pub const APP_CSS: &str = include_str!("../../templates/static/app.css");

pub fn load(override_dir: Option<&std::path::Path>) -> anyhow::Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(false);
    for (name, src) in BUILT_IN {
        let local = override_dir.map(|d| d.join(format!("{name}.hbs")));
        match local.filter(|p| p.exists()) {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading template {}", p.display()))?;
                hb.register_template_string(name, text)
                    .with_context(|| format!("template {}", p.display()))?;
            }
            None => hb
                .register_template_string(name, *src)
                .with_context(|| format!("built-in template {name}"))?,
        }
    }
    // Registered templates double as partials: pages wrap themselves in `{{#> base}}`.
    Ok(hb)
}
