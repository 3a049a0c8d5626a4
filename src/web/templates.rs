//! Handlebars templates, built into the binary; `DONORCARE_TEMPLATES_DIR` may override any of
//! them by file name for a local look.

use anyhow::Context;
use handlebars::Handlebars;

/// Templates outside the pages: the API's printable letters.
pub const BUILT_IN: &[(&str, &str)] = &[("letters", include_str!("../../templates/letters.hbs"))];

pub fn load(override_dir: Option<&std::path::Path>) -> anyhow::Result<Handlebars<'static>> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(false);
    super::pages::view::register(&mut hb);
    for (name, src) in BUILT_IN.iter().chain(super::pages::templates()) {
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
