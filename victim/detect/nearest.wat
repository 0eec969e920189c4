;; Exact nearest-neighbour distance from a query image to a set of stored 8-bit images, for PRADA
;; (victim/nearest.ts calls it on every query the victim answers). 16 pixels at a time: widened to
;; 16 bits, subtracted, and squared-and-summed in 32 bits by i32x4.dot_i16x8_s. Exact while a distance
;; fits in 32 bits unsigned: at most 255^2 per pixel, so up to 66,052 pixels per image (e.g. 148x148x3).
;; Built by scripts/build-kernels.ts into victim/nearest.wasm.
(module
  (import "env" "mem" (memory 1))

  ;; nearest: min over k < count of sum over j < stride of (q[j] - base[k*stride + j])^2, or 2^31 - 1
  ;; when count is 0. stride: bytes per stored image, a multiple of 16 (images zero-padded to it).
  (func $nearest (export "nearest") (param $q i32) (param $base i32) (param $count i32) (param $stride i32) (result i32)
    (local $k i32) (local $p i32) (local $j i32) (local $best i32) (local $s i32)
    (local $acc v128) (local $a v128) (local $b v128) (local $d v128)
    (local.set $best (i32.const 0x7fffffff))
    (local.set $p (local.get $base))
    (local.set $k (i32.const 0))
    (block $done_k
      (loop $for_k
        (br_if $done_k (i32.ge_u (local.get $k) (local.get $count)))
        (local.set $acc (v128.const i32x4 0 0 0 0))
        (local.set $j (i32.const 0))
        (block $done_j
          (loop $for_j
            (br_if $done_j (i32.ge_u (local.get $j) (local.get $stride)))
            (local.set $a (v128.load align=1 (i32.add (local.get $q) (local.get $j))))
            (local.set $b (v128.load align=1 (i32.add (local.get $p) (local.get $j))))
            ;; pixels 0..7 of the 16, then 8..15: d = a - b in 16 bits, acc += d*d summed pairwise
            (local.set $acc (i32x4.add
              (i32x4.dot_i16x8_s
                (local.tee $d (i16x8.sub (i16x8.extend_low_i8x16_u (local.get $a)) (i16x8.extend_low_i8x16_u (local.get $b))))
                (local.get $d))
              (local.get $acc)))
            (local.set $acc (i32x4.add
              (i32x4.dot_i16x8_s
                (local.tee $d (i16x8.sub (i16x8.extend_high_i8x16_u (local.get $a)) (i16x8.extend_high_i8x16_u (local.get $b))))
                (local.get $d))
              (local.get $acc)))
            (local.set $j (i32.add (local.get $j) (i32.const 16)))
            (br $for_j)))
        ;; s: the four lanes' sum; best: the smaller (unsigned) of best and s
        (local.set $s (i32.add (i32.add (i32.add
          (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
          (i32x4.extract_lane 2 (local.get $acc))) (i32x4.extract_lane 3 (local.get $acc))))
        (local.set $best (select (local.get $s) (local.get $best) (i32.lt_u (local.get $s) (local.get $best))))
        (local.set $p (i32.add (local.get $p) (local.get $stride)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $for_k)))
    (local.get $best)))
