use tract_onnx::prelude::*;
fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let m = tract_onnx::onnx().model_for_path(&a[0])?;
    let s: Vec<usize> = a[1].split(',').map(|x| x.parse().unwrap()).collect();
    let m = m.with_input_fact(0, f32::fact(&s).into())?.into_typed()?.into_decluttered()?;
    for n in m.nodes() {
        let facts: Vec<_> = n
            .inputs
            .iter()
            .map(|o| {
                let f = m.outlet_fact(*o).unwrap();
                format!("{}{:?}{}", o.node, f.shape.to_vec(), if f.konst.is_some() { "K" } else { "" })
            })
            .collect();
        println!(
            "{} {} [{}] {:?} -> {:?} succ={}",
            n.id,
            n.name,
            n.op.name(),
            facts,
            n.outputs[0].fact.shape.to_vec(),
            n.outputs[0].successors.len()
        );
        if n.op.name() == "EinSum" || n.op.name().contains("Conv") {
            println!("    {}", n.op.info()?.join("; "));
            println!("    {:?}", n.op);
        }
    }
    Ok(())
}
