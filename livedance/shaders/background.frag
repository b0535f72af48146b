#version 330 core
// Dark stage backdrop: a vertical gradient with a soft glow behind the dancers
// and a vignette, so the eye goes to the middle.
uniform vec3 u_top_color;
uniform vec3 u_bottom_color;
uniform vec3 u_glow_color;
uniform float u_aspect;

in vec2 v_uv;
out vec4 f_color;

void main() {
    vec3 color = mix(u_bottom_color, u_top_color, smoothstep(0.2, 1.0, v_uv.y));
    vec2 c = (v_uv - vec2(0.5, 0.55)) * vec2(u_aspect, 1.0);
    color += u_glow_color * exp(-dot(c, c) * 4.0);
    float vignette = 1.0 - 0.45 * smoothstep(0.4, 1.1, length((v_uv - 0.5) * vec2(u_aspect, 1.0)));
    f_color = vec4(color * vignette, 1.0);
}
