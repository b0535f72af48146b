// Stage lighting shared by the body and the floor: one key light (casts the
// shadow), a coloured rim light from behind, sky/floor ambient, and a soft
// shadow looked up with up to 12 hardware-filtered taps (each tap is already
// a 2x2 bilinear depth comparison, so few taps still give a smooth penumbra;
// on CPU renderers every tap counts).
uniform vec3 u_key_dir;      // towards the key light, unit
uniform vec3 u_key_color;
uniform vec3 u_rim_dir;      // towards the rim light, unit
uniform vec3 u_rim_color;
uniform vec3 u_sky_color;
uniform vec3 u_ground_color;
uniform vec3 u_camera_pos;
uniform sampler2DShadow u_shadow_map;
uniform float u_shadow_softness;  // penumbra radius in shadow-map texels

const vec2 POISSON[12] = vec2[](
    vec2(-0.326, -0.406), vec2(-0.840, -0.074), vec2(-0.696, 0.457),
    vec2(-0.203, 0.621), vec2(0.962, -0.195), vec2(0.473, -0.480),
    vec2(0.519, 0.767), vec2(0.185, -0.893), vec2(0.507, 0.064),
    vec2(0.896, 0.412), vec2(-0.322, -0.933), vec2(-0.792, -0.598)
);

float shadow_visibility(vec4 light_clip, float bias, int taps) {
    vec3 p = light_clip.xyz / light_clip.w * 0.5 + 0.5;
    if (p.x <= 0.0 || p.x >= 1.0 || p.y <= 0.0 || p.y >= 1.0 || p.z >= 1.0) {
        return 1.0;
    }
    vec2 texel = u_shadow_softness / vec2(textureSize(u_shadow_map, 0));
    float lit = 0.0;
    for (int i = 0; i < taps; ++i) {
        lit += texture(u_shadow_map, vec3(p.xy + POISSON[i] * texel, p.z - bias));
    }
    return lit / float(taps);
}
