//! `--format png`: rasterises each chart's SVG with resvg, using the system's fonts (Debian:
//! fonts-dejavu-core), at twice the SVG size so that text stays sharp.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kindred_core::{Error, Result};
use resvg::{tiny_skia, usvg};

use kindred_chart::Chart;

/// Pixels per SVG unit in the written images.
const SCALE: f32 = 2.0;

/// Turns chart SVGs into PNG bytes; holds the font database, which is costly to build.
pub struct Rasterizer {
    options: usvg::Options<'static>,
}

impl Rasterizer {
    /// Loads the system fonts. Fails when there are none: charts without titles, axis labels
    /// and legends would be unreadable.
    pub fn new() -> Result<Self> {
        let mut fonts = usvg::fontdb::Database::new();
        fonts.load_system_fonts();
        if fonts.is_empty() {
            return Err(Error::InvalidInput(
                "no fonts found on this system to draw chart text with; install a font package \
                 (e.g. Debian's fonts-dejavu-core)"
                    .to_owned(),
            ));
        }
        fonts.set_sans_serif_family("DejaVu Sans");
        let options = usvg::Options {
            font_family: "DejaVu Sans".to_owned(),
            fontdb: Arc::new(fonts),
            ..usvg::Options::default()
        };
        Ok(Rasterizer { options })
    }

    /// The chart as PNG bytes.
    pub fn png(&self, chart: &Chart) -> Result<Vec<u8>> {
        let failed = |message: String| {
            Error::InvalidInput(format!("cannot draw chart `{}`: {message}", chart.title))
        };
        let tree =
            usvg::Tree::from_str(&chart.svg, &self.options).map_err(|e| failed(e.to_string()))?;
        let size = tree
            .size()
            .to_int_size()
            .scale_by(SCALE)
            .ok_or_else(|| failed("empty size".to_owned()))?;
        let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
            .ok_or_else(|| failed("empty size".to_owned()))?;
        pixmap.fill(tiny_skia::Color::WHITE);
        resvg::render(
            &tree,
            tiny_skia::Transform::from_scale(SCALE, SCALE),
            &mut pixmap.as_mut(),
        );
        pixmap.encode_png().map_err(|e| failed(e.to_string()))
    }
}

/// Writes one PNG per chart into `dir` (created if needed), named `NN-title.png` in page order;
/// returns the paths written.
pub fn write_pngs(charts: &[Chart], dir: &Path) -> Result<Vec<PathBuf>> {
    if charts.is_empty() {
        return Err(Error::InvalidInput(
            "the results hold nothing to chart".to_owned(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let raster = Rasterizer::new()?;
    let mut written = Vec::with_capacity(charts.len());
    for (i, chart) in charts.iter().enumerate() {
        let path = dir.join(format!("{:02}-{}.png", i + 1, chart.slug()));
        let bytes = raster.png(chart)?;
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}
